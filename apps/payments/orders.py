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

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import Price
from apps.payments.models import (
    ORDER_TRANSITIONS,
    REFUNDABLE_STATUSES,
    Order,
    OrderLine,
    OrderRefund,
    OrderStatus,
    OrderTransition,
)
from apps.payments.signals import order_canceled, order_expired, order_paid, order_refunded, payment_failed
from apps.payments.stripe_client import StripeRefused

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
) -> str:
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
        return f"order {order.pk} paid" if moved else f"order {order.pk} unchanged ({order.status})"
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
        return (
            f"order {order.pk} in review: Stripe took {amount} {currency} for an order of {order.amount_total} "
            f"{order.currency} that was {order.status}"
        )
    return f"order {order.pk} unchanged ({order.status})"


def order_accept_payment(*, order: Order, by) -> Order:
    """An operator accepts what Stripe took for an order in review: it becomes paid (and its receipt goes)."""
    if order.status != OrderStatus.REVIEW:
        raise OrderActionRefused(f"Only an order in review can be accepted; this one is {order.status}.")
    order_transition(
        order_id=order.pk, to=OrderStatus.PAID, cause=f"payment accepted by user {getattr(by, 'pk', None)}"
    )
    order.refresh_from_db()
    return order


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
    """Record a refund (made here or in the dashboard) once, whatever told us about it first.

    Raises `RefundNotApplicable` while the order holds no payment to refund (Stripe sends events
    in no order: the refund may come before the payment); the event waits and is tried again.
    Never records more than Stripe took for the order.
    """
    order = Order.objects.select_for_update().get(pk=order_id)
    known = OrderRefund.objects.filter(stripe_refund_id=stripe_refund_id).first()
    if known is not None:
        if idempotency_key and not known.idempotency_key:  # the webhook was faster than our own answer
            OrderRefund.objects.filter(pk=known.pk).update(idempotency_key=idempotency_key, created_by=created_by)
        return False
    if order.status not in REFUNDABLE_STATUSES:
        raise RefundNotApplicable(f"order {order.pk} is {order.status}; its refund {stripe_refund_id} waits")
    if amount > order.amount_remaining:
        log.error(
            "refund above what remains order=%s refund=%s amount=%s remaining=%s",
            order.pk,
            stripe_refund_id,
            amount,
            order.amount_remaining,
        )
        amount = order.amount_remaining
    refund = OrderRefund.objects.create(
        order=order,
        stripe_refund_id=stripe_refund_id,
        amount=amount,
        reason=reason or "",
        created_by=created_by,
        idempotency_key=idempotency_key,
    )
    refunded = order.amount_refunded + amount
    to = OrderStatus.REFUNDED if refunded >= order.amount_charged else OrderStatus.PARTIALLY_REFUNDED
    return order_transition(order_id=order.pk, to=to, cause=cause, refund=refund, amount_refunded=refunded)


class RefundNotApplicable(Exception):
    """The order holds no payment (yet) that this refund could come from."""


class OrderActionRefused(Exception):
    """The order is not in a state that allows this (already refunded, expired, ...)."""


# The same refund asked again this soon by the same person is a double click, not a second refund.
DOUBLE_CLICK_SECONDS = 30


def order_refund(
    *, order: Order, amount: int | None, by, reason: str = "requested_by_customer", client_key: str | None = None
) -> OrderRefund:
    """Refund (part of) an order Stripe took money for; never more than what remains; idempotent.

    A client may send its own `Idempotency-Key` (the API binds it to the user and amount). Without
    one, two things catch a double click: the Stripe key is made from what the order held *before*
    the request took its lock (so clicks in flight together replay one refund), and the same request
    by the same user within `DOUBLE_CLICK_SECONDS` gets the refund already made.
    """
    from apps.payments.stripe_client import gateway

    asked = str(amount) if amount is not None else "rest"
    by_id = getattr(by, "pk", None)
    snapshot = Order.objects.get(pk=order.pk)
    if client_key:
        key = f"order:{order.pk}:refund:user:{by_id}:client:{client_key}"
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
                .exclude(idempotency_key__contains=":client:")
                .order_by("-created_at")
                .first()
            )
        if done is not None:
            return done
        wanted = amount if amount is not None else locked.amount_remaining
        if locked.status not in REFUNDABLE_STATUSES:
            raise OrderActionRefused(f"Only a paid order can be refunded; this one is {locked.status}.")
        if not locked.payment_intent_id:
            raise OrderActionRefused("This order has no payment to refund.")
        if wanted == 0 or wanted > locked.amount_remaining:
            raise ValidationError(
                {"amount": [f"At most {locked.amount_remaining} (minor units) remain to be refunded."]}
            )
        gw = gateway()
        refund = _stripe_call(
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
            cause=f"refund by user {by_id}",
            created_by=by,
            idempotency_key=key,
        )
        return OrderRefund.objects.get(stripe_refund_id=refund.id)


def _stripe_call(operation, *, idempotency_key: str | None = None):
    """A call whose refusal by Stripe (an invalid request) is told to the person who asked, not a crash."""
    import stripe

    from apps.payments.stripe_client import gateway

    try:
        return gateway().call(operation, idempotency_key=idempotency_key)
    except stripe.StripeError as error:
        log.warning("stripe refused error=%s", error)
        raise StripeRefused(error) from error


def order_self_refund_check(*, order: Order, by) -> None:
    """Staff with the `refund_order` permission refund at any time; the owner cancels a paid order (a full
    refund) only for `ORDER_SELF_REFUND_DAYS` after paying; nobody else refunds another's order."""
    if by.is_staff and by.has_perm("payments.refund_order"):
        return
    if order.user_id != by.pk:
        raise OrderActionRefused("Refunding this order needs the 'Can refund order' permission.")
    days = settings.ORDER_SELF_REFUND_DAYS
    if days <= 0:
        raise OrderActionRefused("A paid order is refunded by the shop: please contact us.")
    paid_at = order.paid_at or order.created_at
    if timezone.now() > paid_at + timedelta(days=days):
        raise OrderActionRefused(
            f"This order was paid more than {days} days ago, so it can no longer be canceled here; "
            "please contact us for a refund."
        )


def order_cancel(*, order: Order, by) -> Order:
    """Cancel a pending order (its Checkout Session is expired in Stripe) or refund a paid one in full
    (an owner only within `ORDER_SELF_REFUND_DAYS` of paying; staff with `refund_order` at any time)."""
    import stripe

    from apps.payments.order_webhooks import apply_session
    from apps.payments.stripe_client import gateway

    order.refresh_from_db()
    by_id = getattr(by, "pk", None)
    if order.status in REFUNDABLE_STATUSES:
        order_self_refund_check(order=order, by=by)
        order_refund(order=order, amount=None, by=by)
    elif order.status in (OrderStatus.PENDING, OrderStatus.FAILED):
        if order.checkout_session_id:
            gw = gateway()
            try:
                gw.call(lambda options: gw.v1.checkout.sessions.expire(order.checkout_session_id, options=options))
            except stripe.InvalidRequestError as error:
                # Paid (or expired) at this very moment: what Stripe holds decides, not the click.
                session = _stripe_call(
                    lambda options: gw.v1.checkout.sessions.retrieve(order.checkout_session_id, options=options)
                )
                if session.status == "open":  # refused for another reason: say so, change nothing
                    raise StripeRefused(error) from error
                apply_session(session.to_dict(), cause=f"cancel by user {by_id} found the session closed")
                order.refresh_from_db()
                if order.status in REFUNDABLE_STATUSES:
                    return order_cancel(order=order, by=by)
                return order
            except stripe.StripeError as error:
                raise StripeRefused(error) from error
        order_transition(order_id=order.pk, to=OrderStatus.CANCELED, cause=f"canceled by user {by_id}")
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
        session = _stripe_call(
            lambda options: gw.v1.checkout.sessions.retrieve(order.checkout_session_id, options=options)
        )
        apply_session(session.to_dict(), cause=f"sync requested by user {getattr(by, 'pk', None)}")
        order.refresh_from_db()
    return order
