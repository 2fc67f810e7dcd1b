"""Refunds, made here or in Stripe's dashboard: recorded once, never more than Stripe took for the order; one asked
for here is written down before Stripe is called, and finished by a worker if its answer is lost."""

import logging
from datetime import timedelta

import stripe
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from apps.payments.gateway.client import gateway
from apps.payments.gateway.errors import StripeKeySpent, StripeRefused, StripeUnavailable
from apps.payments.orders.errors import OrderActionRefused, RefundNotApplicable
from apps.payments.orders.idempotency import IdempotencyConflict
from apps.payments.orders.lifecycle import order_transition
from apps.payments.orders.locks import order_lock
from apps.payments.orders.models import (
    REFUNDABLE_STATUSES,
    Order,
    OrderRefund,
    OrderStatus,
    RefundRequest,
    RefundRequestState,
)
from apps.payments.orders.payments import payment_note_refunds
from apps.users.models import User

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
    order = order_lock(order_id)
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
# A request still unanswered after this long lost its answer (its process died, Stripe did not answer in time):
# well past the longest a request to Stripe may take.
UNANSWERED_AFTER = timedelta(seconds=60)
# Stripe forgets an idempotency key after a day: a request older than this looks for its refund before asking.
KEY_FORGOTTEN_AFTER = timedelta(hours=23)


class RefundPending(StripeUnavailable):
    """Stripe did not answer the refund (yet): it is recorded, and a worker finishes it with the same key."""

    public_detail = (
        "The payment provider has not confirmed the refund yet; it is recorded and will be completed within "
        "minutes. Sending the same request again soon (as Retry-After says) gets this refund, not another."
    )


def order_refund(
    *,
    order: Order,
    amount: int | None,
    by: User | None,
    reason: str = "requested_by_customer",
    client_key: str | None = None,
) -> OrderRefund:
    """Refund (part of) an order Stripe took money for; never more than what remains; idempotent.

    Three steps, and no lock is held while Stripe is asked: the request is checked and written down
    (`RefundRequest`, under the order's lock), Stripe is asked once with the request's own key, and its answer
    is recorded (`order_apply_refund`). A request whose answer never came (its process died, Stripe did not
    answer) is finished by a worker (`refund_requests_finish`) with the same key: the refund is made once.

    A client may send its own `Idempotency-Key` (the API binds it to the user and amount). Without one, two
    things catch a double click: the Stripe key is made from what the order held *before* the request took
    its lock (so clicks in flight together share one request), and the same request by the same user within
    `DOUBLE_CLICK_SECONDS` gets the refund already made.
    """
    request = _refund_request(order=order, amount=amount, by=by, reason=reason, client_key=client_key)
    if request.refund_id is not None:
        return request.refund
    return _settle(request, _refund_in_stripe(request))


def _refund_request(
    *, order: Order, amount: int | None, by: User | None, reason: str, client_key: str | None
) -> RefundRequest:
    """The request this one is (a retry, a double click), or a new one once checked against what remains."""
    snapshot = Order.objects.get(pk=order.pk)
    if client_key:
        key = f"order:{order.pk}:refund:user:{by.pk if by else None}:client:{client_key}"
    else:
        key = f"order:{order.pk}:refund:{snapshot.amount_refunded}:{amount if amount is not None else 'rest'}"
    with transaction.atomic():
        locked = order_lock(order.pk)
        found = RefundRequest.objects.select_related("refund").filter(idempotency_key=key).first()
        if found is not None and client_key and found.amount_asked != amount:
            # Its first answer was a 5xx, which the client's key does not keep: still one refund per key.
            raise IdempotencyConflict("This Idempotency-Key was used for a refund of another amount.")
        if found is None and not client_key:
            # A double click, or a retry of a request still waiting for Stripe (whatever its age): the same one.
            found = (
                RefundRequest.objects.select_related("refund")
                .filter(order=locked, created_by=by, client_key="", amount_asked=amount)
                .filter(
                    Q(state=RefundRequestState.REQUESTED)
                    | Q(created_at__gte=timezone.now() - timedelta(seconds=DOUBLE_CLICK_SECONDS))
                )
                .exclude(state=RefundRequestState.FAILED)
                .first()
            )
        if found is not None and found.state != RefundRequestState.FAILED:
            return found
        if locked.status not in REFUNDABLE_STATUSES:
            raise OrderActionRefused(f"Only a paid order can be refunded; this one is {locked.status}.")
        if not locked.payment_intent_id:
            raise OrderActionRefused("This order has no payment to refund.")
        # Requests still waiting for Stripe's answer count as made: two refunds asked together never exceed it.
        pending = RefundRequest.objects.filter(order=locked, state=RefundRequestState.REQUESTED).aggregate(
            amount=Sum("amount")
        )["amount"]
        remaining = locked.amount_remaining - (pending or 0)
        wanted = amount if amount is not None else remaining
        if wanted <= 0 or wanted > remaining:
            raise ValidationError({"amount": [f"At most {max(remaining, 0)} (minor units) remain to be refunded."]})
        if found is not None:  # refused before, asked again with its key: checked again, and waiting again
            RefundRequest.objects.filter(pk=found.pk).update(
                state=RefundRequestState.REQUESTED, amount=wanted, last_error=""
            )
            found.refresh_from_db()
            return found
        return RefundRequest.objects.create(
            order=locked,
            amount=wanted,
            amount_asked=amount,
            reason=reason,
            idempotency_key=key,
            client_key=client_key or "",
            created_by=by,
        )


def _refund_in_stripe(request: RefundRequest, *, look_first: bool = False):
    """Ask Stripe for the request's refund, once, with its own key (`look_first`: find the refund it made
    earlier, for a request older than Stripe's memory of keys). A refusal fails the request; no answer leaves
    it to the worker."""
    gw = gateway()
    order = request.order
    try:
        if look_first and (made := _refund_made_for(request)) is not None:
            return made
        return gw.call(
            lambda options: gw.v1.refunds.create(
                params={
                    "payment_intent": order.payment_intent_id,
                    "amount": request.amount,
                    "reason": request.reason,
                    "metadata": {"order": str(order.pk), "refund_request": str(request.pk)},
                },
                options=options,
            ),
            idempotency_key=request.idempotency_key,
        )
    except (stripe.StripeError, StripeKeySpent) as error:  # refused for good: nothing was refunded
        refused = error if isinstance(error, StripeKeySpent) else StripeRefused(error)
        RefundRequest.objects.filter(pk=request.pk).update(state=RefundRequestState.FAILED, last_error=str(refused))
        log.warning("refund refused order=%s request=%s error=%s", order.pk, request.pk, refused)
        raise refused from error
    except StripeUnavailable as error:  # perhaps made, perhaps not: the same key tells, later
        RefundRequest.objects.filter(pk=request.pk).update(last_error=str(error))
        raise RefundPending(str(error), error.retry_after) from error


def _refund_made_for(request: RefundRequest):
    """The refund Stripe made for this request earlier, found by the request's id in its metadata."""
    gw = gateway()
    found = gw.call(
        lambda options: gw.v1.refunds.list(
            params={"payment_intent": request.order.payment_intent_id, "limit": 100}, options=options
        )
    )
    return next(
        (refund for refund in found.auto_paging_iter() if refund.metadata.get("refund_request") == str(request.pk)),
        None,
    )


def _settle(request: RefundRequest, refund) -> OrderRefund:
    """Record what Stripe refunded for the request (once, whoever records it first: this, its webhook, the
    worker finishing it)."""
    by = request.created_by
    try:
        order_apply_refund(
            order_id=request.order_id,
            stripe_refund_id=refund.id,
            amount=refund.amount,
            reason=request.reason,
            cause=f"refund by user {by.pk if by else None}",
            created_by=by,
            idempotency_key=request.idempotency_key,
        )
    except RefundNotApplicable as error:  # the order moved meanwhile: the worker tries again
        raise RefundPending(str(error)) from error
    made = OrderRefund.objects.get(stripe_refund_id=refund.id)
    RefundRequest.objects.filter(pk=request.pk).update(
        state=RefundRequestState.SETTLED, refund=made, settled_at=timezone.now(), last_error=""
    )
    return made


def refund_requests_finish(*, limit: int = 100) -> int:
    """Worker: finish the refund requests whose answer never came (asking Stripe again with the same key);
    answers how many were settled."""
    now = timezone.now()
    unanswered = RefundRequest.objects.select_related("order", "created_by").filter(
        state=RefundRequestState.REQUESTED, created_at__lt=now - UNANSWERED_AFTER
    )
    settled = 0
    for request in unanswered.order_by("created_at")[:limit]:
        try:
            refund = _refund_in_stripe(request, look_first=request.created_at < now - KEY_FORGOTTEN_AFTER)
            _settle(request, refund)
        except (StripeRefused, StripeKeySpent, RefundPending) as error:
            log.warning("refund request not finished request=%s error=%s", request.pk, error)
            continue
        settled += 1
    return settled


def order_self_refund_check(*, order: Order, by: User) -> None:
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
