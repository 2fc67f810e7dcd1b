"""Orders: created from a cart, moved through their states by one function, refunded.

`order_transition` is the only way an order's status changes: it locks the row,
refuses moves `ORDER_TRANSITIONS` does not allow (a paid order is never downgraded,
an expired one never comes back), writes the audit trail, and sends the matching
signal inside the transaction, so what receivers record (the receipt in mail's
outbox) commits or rolls back with the transition itself.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import Price
from apps.payments.models import ORDER_TRANSITIONS, Order, OrderLine, OrderRefund, OrderStatus, OrderTransition
from apps.payments.signals import order_canceled, order_expired, order_paid, order_refunded, payment_failed

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
def order_create(*, user, lines: list[CartLine], email: str = "", payment_link_id: str = "") -> Order:
    """An order priced from the catalog as it is now; the client's idea of prices plays no part."""
    currency = lines[0].price.currency
    order = Order.objects.create(
        user=user,
        email=email or (user.email if user else ""),
        currency=currency,
        amount_total=sum(line.price.unit_amount * line.quantity for line in lines),
        payment_link_id=payment_link_id,
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
    order = Order.objects.select_for_update().get(pk=order_id)
    if order.status == to and to != OrderStatus.PARTIALLY_REFUNDED:
        return False
    if to not in ORDER_TRANSITIONS[order.status]:
        log.info("order transition refused order=%s from=%s to=%s cause=%s", order.pk, order.status, to, cause)
        return False
    OrderTransition.objects.create(order=order, from_status=order.status, to_status=to, cause=cause[:255])
    order.status = to
    for field, value in changes.items():
        setattr(order, field, value)
    if to == OrderStatus.PAID and order.paid_at is None:
        order.paid_at = timezone.now()
    order.save()
    arguments = {"order_id": order.pk}
    if refund is not None:
        arguments.update(amount=refund.amount, refund_id=refund.pk)
    SIGNALS[to].send(sender=Order, **arguments)
    return True


@transaction.atomic
def order_apply_refund(
    *,
    order_id: int,
    stripe_refund_id: str,
    amount: int,
    cause: str,
    reason: str = "",
    created_by=None,
    idempotency_key: str | None = None,
) -> bool:
    """Record a refund (made here or in the dashboard) once, whatever told us about it first."""
    order = Order.objects.select_for_update().get(pk=order_id)
    known = OrderRefund.objects.filter(stripe_refund_id=stripe_refund_id).first()
    if known is not None:
        if idempotency_key and not known.idempotency_key:  # the webhook was faster than our own answer
            OrderRefund.objects.filter(pk=known.pk).update(idempotency_key=idempotency_key, created_by=created_by)
        return False
    if order.status not in (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED):
        log.warning("refund for an order that is not paid order=%s status=%s", order.pk, order.status)
        return False
    amount = min(amount, order.amount_remaining)
    refund = OrderRefund.objects.create(
        order=order,
        stripe_refund_id=stripe_refund_id,
        amount=amount,
        reason=reason or "",
        created_by=created_by,
        idempotency_key=idempotency_key,
    )
    refunded = order.amount_refunded + amount
    to = OrderStatus.REFUNDED if refunded >= order.amount_total else OrderStatus.PARTIALLY_REFUNDED
    return order_transition(order_id=order.pk, to=to, cause=cause, refund=refund, amount_refunded=refunded)


class OrderActionRefused(Exception):
    """The order is not in a state that allows this (already refunded, expired, ...)."""


# The same refund asked again this soon by the same person is a double click, not a second refund.
DOUBLE_CLICK_SECONDS = 30


def order_refund(
    *, order: Order, amount: int | None, by, reason: str = "requested_by_customer", client_key: str | None = None
) -> OrderRefund:
    """Refund (part of) a paid order through Stripe; never more than what remains; idempotent against double clicks.

    A client may send its own `Idempotency-Key`. Without one, two things catch a double
    click: the Stripe key is made from what the order held *before* the request took its
    lock (so clicks in flight together replay one refund), and the same request by the same
    user within `DOUBLE_CLICK_SECONDS` gets the refund already made.
    """
    from apps.payments.stripe_client import gateway

    asked = str(amount) if amount is not None else "rest"
    snapshot = Order.objects.get(pk=order.pk)
    if client_key:
        key = f"order:{order.pk}:refund:client:{client_key}"
    else:
        key = f"order:{order.pk}:refund:{snapshot.amount_refunded}:{asked}"
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        done = OrderRefund.objects.filter(idempotency_key=key).first()
        if done is None and not client_key:
            done = (
                OrderRefund.objects.filter(
                    order=locked,
                    created_by=by,
                    idempotency_key__endswith=f":{asked}",
                    created_at__gte=timezone.now() - timedelta(seconds=DOUBLE_CLICK_SECONDS),
                )
                .order_by("-created_at")
                .first()
            )
        if done is not None:
            return done
        wanted = amount if amount is not None else locked.amount_remaining
        if locked.status not in (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED):
            raise OrderActionRefused(f"Only a paid order can be refunded; this one is {locked.status}.")
        if not locked.payment_intent_id:
            raise OrderActionRefused("This order has no payment to refund.")
        if wanted == 0 or wanted > locked.amount_remaining:
            raise ValidationError(
                {"amount": [f"At most {locked.amount_remaining} (minor units) remain to be refunded."]}
            )
        gw = gateway()
        refund = gw.call(
            lambda options: gw.v1.refunds.create(
                params={
                    "payment_intent": locked.payment_intent_id,
                    "amount": wanted,
                    "reason": reason,
                    "metadata": {"order": str(locked.pk)},
                },
                options=options,
            ),
            idempotency_key=key,
        )
        order_apply_refund(
            order_id=locked.pk,
            stripe_refund_id=refund.id,
            amount=refund.amount,
            reason=reason,
            cause=f"refund by user {getattr(by, 'pk', None)}",
            created_by=by,
            idempotency_key=key,
        )
        return OrderRefund.objects.get(stripe_refund_id=refund.id)


def order_cancel(*, order: Order, by) -> Order:
    """Cancel a pending order (its Checkout Session is expired in Stripe) or refund a paid one in full."""
    import stripe

    from apps.payments.order_webhooks import apply_session
    from apps.payments.stripe_client import gateway

    order.refresh_from_db()
    if order.status in (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED):
        order_refund(order=order, amount=None, by=by)
    elif order.status in (OrderStatus.PENDING, OrderStatus.FAILED):
        if order.checkout_session_id:
            gw = gateway()
            try:
                gw.call(lambda options: gw.v1.checkout.sessions.expire(order.checkout_session_id, options=options))
            except stripe.InvalidRequestError:
                # Paid (or expired) at this very moment: what Stripe holds decides, not the click.
                session = gw.call(
                    lambda options: gw.v1.checkout.sessions.retrieve(order.checkout_session_id, options=options)
                )
                apply_session(
                    session.to_dict(), cause=f"cancel by user {getattr(by, 'pk', None)} found the session closed"
                )
                order.refresh_from_db()
                if order.status in (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED):
                    return order_cancel(order=order, by=by)
                return order
        order_transition(
            order_id=order.pk, to=OrderStatus.CANCELED, cause=f"canceled by user {getattr(by, 'pk', None)}"
        )
    else:
        raise OrderActionRefused(f"This order is {order.status}; it can no longer be canceled.")
    order.refresh_from_db()
    return order


def order_sync(*, order: Order, by) -> Order:
    """Ask Stripe for the order's Checkout Session and apply it (the success page does not wait for the webhook)."""
    from apps.payments.order_webhooks import apply_session
    from apps.payments.stripe_client import gateway

    if order.checkout_session_id and order.status in (OrderStatus.PENDING, OrderStatus.FAILED):
        gw = gateway()
        session = gw.call(lambda options: gw.v1.checkout.sessions.retrieve(order.checkout_session_id, options=options))
        apply_session(session.to_dict(), cause=f"sync requested by user {getattr(by, 'pk', None)}")
        order.refresh_from_db()
    return order
