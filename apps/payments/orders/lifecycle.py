"""Orders: created from a cart, and moved through their states by one function.

`order_transition` is the only way an order's status changes: it locks the row,
refuses moves `ORDER_TRANSITIONS` does not allow (a paid order is never downgraded,
an expired one never comes back), writes the audit trail, and sends the matching
signal inside the transaction, so what receivers record (the receipt in mail's
outbox) commits or rolls back with the transition itself.
"""

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from apps.catalog.models import Price
from apps.payments.orders.errors import OrderActionRefused
from apps.payments.orders.locks import order_lock
from apps.payments.orders.models import ORDER_TRANSITIONS, Order, OrderLine, OrderRefund, OrderStatus, OrderTransition
from apps.payments.orders.outcomes import OrderOutcome
from apps.payments.signals import order_canceled, order_expired, order_paid, order_refunded, payment_failed
from apps.users.models import User
from config.outcomes import Outcome

log = logging.getLogger("apps.payments.orders")

SIGNALS = {
    OrderStatus.PAID: order_paid,
    OrderStatus.FAILED: payment_failed,
    OrderStatus.EXPIRED: order_expired,
    OrderStatus.CANCELED: order_canceled,
    OrderStatus.PARTIALLY_REFUNDED: order_refunded,
    OrderStatus.REFUNDED: order_refunded,
}


@dataclass(frozen=True)
class CartLine:
    price: Price
    quantity: int


@transaction.atomic
def order_create(
    *,
    user,
    lines: list[CartLine],
    email: str = "",
    payment_link_id: str = "",
    checkout_session_id: str | None = None,
    cart_fingerprint: str = "",
) -> Order:
    """An order priced from the catalog as it is now; the client's idea of prices plays no part."""
    currency = lines[0].price.currency
    order = Order.objects.create(
        user=user,
        email=email or (user.email if user else ""),
        currency=currency,
        amount_total=sum(line.price.unit_amount * line.quantity for line in lines),
        payment_link_id=payment_link_id,
        checkout_session_id=checkout_session_id,
        cart_fingerprint=cart_fingerprint,
    )
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            price=line.price,
            product_name=line.price.product.name,
            unit_amount=line.price.unit_amount,
            quantity=line.quantity,
            amount=line.price.unit_amount * line.quantity,
        )
        for line in lines
    )
    return order


@transaction.atomic
def order_transition(*, order_id: int, to: str, cause: str, refund: OrderRefund | None = None, **changes) -> bool:
    """Move an order to `to` if that is a legal move; False (and nothing changes) otherwise."""
    order = order_lock(order_id)
    if order.status == to and to != OrderStatus.PARTIALLY_REFUNDED:
        return False
    if to not in ORDER_TRANSITIONS[order.status]:
        log.info("order transition refused order=%s from=%s to=%s cause=%s", order.pk, order.status, to, cause)
        return False
    OrderTransition.objects.create(order=order, from_status=order.status, to_status=to, cause=cause[:255])
    order.status = to
    for field, value in changes.items():
        setattr(order, field, value)
    if to in (OrderStatus.PAID, OrderStatus.REVIEW) and order.paid_at is None:
        order.paid_at = timezone.now()
    if to == OrderStatus.PAID and not order.amount_charged:  # paid means Stripe took the total
        order.amount_charged, order.currency_charged = order.amount_total, order.currency
    order.save()
    arguments = {"order_id": order.pk}
    if refund is not None:
        arguments.update(amount=refund.amount, refund_id=refund.pk)
    if to in SIGNALS:  # an order in review tells nobody yet: no receipt for money that does not match
        SIGNALS[to].send(sender=Order, **arguments)
    return True


def order_payment_settle(
    *, order_id: int, amount: int | None, currency: str | None, payment_intent_id: str, cause: str, email: str = ""
) -> Outcome:
    """Stripe took `amount` of `currency` for the order. The order is paid only when that is exactly its
    total; any other amount parks it in `review` (both amounts kept) for an operator, with no receipt,
    and so does money taken for an order that was canceled or expired meanwhile."""
    order = Order.objects.get(pk=order_id)
    currency = (currency or "").lower()
    changes = {
        "payment_intent_id": payment_intent_id or order.payment_intent_id,
        "amount_charged": amount or 0,
        "currency_charged": currency,
    }
    if email and not order.email:
        changes["email"] = email
    closed = order.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED)
    if amount == order.amount_total and currency == order.currency and not closed:
        moved = order_transition(order_id=order.pk, to=OrderStatus.PAID, cause=cause, **changes)
        return (
            OrderOutcome.PAID.of(order=order.pk)
            if moved
            else OrderOutcome.UNCHANGED.of(order=order.pk, status=order.status)
        )
    moved = order_transition(order_id=order.pk, to=OrderStatus.REVIEW, cause=cause, **changes)
    if moved:
        log.error(
            "order payment needs review order=%s status=%s expected=%s %s charged=%s %s payment_intent=%s cause=%s",
            order.pk,
            order.status,
            order.amount_total,
            order.currency,
            amount,
            currency,
            payment_intent_id,
            cause,
        )
        return OrderOutcome.IN_REVIEW.of(
            order=order.pk,
            charged=amount,
            charged_currency=currency,
            total=order.amount_total,
            currency=order.currency,
            status=order.status,
        )
    return OrderOutcome.UNCHANGED.of(order=order.pk, status=order.status)


def order_accept_payment(*, order: Order, by: User) -> Order:
    """An operator accepts what Stripe took for an order in review: it becomes paid (and its receipt goes)."""
    if order.status != OrderStatus.REVIEW:
        raise OrderActionRefused(f"Only an order in review can be accepted; this one is {order.status}.")
    order_transition(order_id=order.pk, to=OrderStatus.PAID, cause=f"payment accepted by user {by.pk}")
    order.refresh_from_db()
    return order
