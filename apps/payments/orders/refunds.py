"""Refunds, made here or in Stripe's dashboard: recorded once, never more than Stripe took for the order."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.payments.gateway.client import gateway
from apps.payments.models import REFUNDABLE_STATUSES, Order, OrderRefund, OrderStatus
from apps.payments.orders.errors import OrderActionRefused, RefundNotApplicable
from apps.payments.orders.lifecycle import order_transition
from apps.payments.orders.payments import payment_note_refunds

log = logging.getLogger("apps.payments.orders")


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
    moved = order_transition(order_id=order.pk, to=to, cause=cause, refund=refund, amount_refunded=refunded)
    order.refresh_from_db()
    payment_note_refunds(order=order)
    return moved


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
        refund = gw.call_for_client(
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
