"""Orders whose payment Stripe may have started without our hearing of it.

A request that asks Stripe for an order's Checkout Session or payment intent and gets no answer (Stripe busy
or unreachable: a 503 with `Retry-After`) leaves its order pending: the client's retry gets the same order
and, asking again with the same key, what Stripe made. An order no retry comes for within
`CHECKOUT_REUSE_SECONDS` is closed here: what Stripe made for it (found by the order its metadata names) is
expired or canceled, and the order canceled with its ids; or, paid meanwhile, recorded and applied. Nothing
Stripe made is left that no order knows, and no order is left pending without its session or intent.
"""

import logging
from datetime import timedelta

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.payments.gateway.client import gateway
from apps.payments.gateway.errors import StripeUnavailable
from apps.payments.gateway.installation import is_ours
from apps.payments.mirror.models import MirrorKind
from apps.payments.mirror.refs import stripe_id_of
from apps.payments.orders.intents import STILL_PAYABLE, intent_apply
from apps.payments.orders.lifecycle import order_transition
from apps.payments.orders.locks import order_lock
from apps.payments.orders.models import Order, OrderStatus
from apps.payments.orders.sessions import apply_session

log = logging.getLogger("apps.payments.orders")

# Past the reuse window, no retry can come back to the order; a moment more for a request still under way
# (longer than a Stripe call may take, STRIPE_TIMEOUT_SECONDS).
GRACE = timedelta(seconds=30)
CAUSE = "closed: its payment was never started here"


def unstarted_orders_close(*, limit: int = 100) -> int:
    """Worker: close the orders left pending with neither session nor intent; answers how many it closed."""
    cutoff = timezone.now() - timedelta(seconds=settings.CHECKOUT_REUSE_SECONDS) - GRACE
    unstarted = Order.objects.filter(
        status=OrderStatus.PENDING, checkout_session_id=None, payment_intent_id="", created_at__lt=cutoff
    )
    closed = 0
    for order in unstarted.order_by("created_at")[:limit]:
        try:
            closed += _close(order)
        except (StripeUnavailable, stripe.StripeError) as error:  # the next run asks again; the others go on
            log.warning("unstarted order not closed yet order=%s error=%s", order.pk, error)
    return closed


def _close(order: Order) -> bool:
    customer = order.stripe_customer_id or (stripe_id_of(MirrorKind.USER, order.user_id) if order.user_id else None)
    ended = {}  # what Stripe made for the order and was ended here: the canceled order keeps its ids
    if customer:
        paid, ended["checkout_session_id"] = _settle_sessions(order, customer)
        if paid:
            return False  # Stripe took (or is taking) the money: the order is paid, not closed
        paid, ended["payment_intent_id"] = _settle_intents(order, customer)
        if paid:
            return False
    with transaction.atomic():
        locked = order_lock(order.pk)
        if locked.status != OrderStatus.PENDING or locked.checkout_session_id or locked.payment_intent_id:
            return False  # a late retry started it meanwhile
        if ids := {field: found for field, found in ended.items() if found}:
            Order.objects.filter(pk=order.pk).update(**ids)
        return order_transition(order_id=order.pk, to=OrderStatus.CANCELED, cause=CAUSE)


def _made_for(order: Order, listed) -> list:
    """What Stripe made for the order, newest first, among the customer's objects made since the order."""
    since = int(order.created_at.timestamp()) - 60
    found = []
    for obj in listed.auto_paging_iter():
        if obj.created < since:
            break
        if is_ours(obj.metadata) and obj.metadata.get("order") == str(order.pk):
            found.append(obj)
    return found


def _settle_sessions(order: Order, customer: str) -> tuple[bool, str | None]:
    """Whether a session made for the order was paid (and applied), and the newest one expired here."""
    gw = gateway()
    listed = gw.call(lambda options: gw.v1.checkout.sessions.list(params={"customer": customer}, options=options))
    expired = None
    for session in _made_for(order, listed):
        if session.status == "complete":
            Order.objects.filter(pk=order.pk, checkout_session_id=None).update(checkout_session_id=session.id)
            apply_session(session.to_dict(), cause=f"{CAUSE}, but its session {session.id} was paid")
            return True, None
        if session.status == "open":
            gw.call(lambda options, session=session: gw.v1.checkout.sessions.expire(session.id, options=options))
            log.warning("unstarted order's session expired order=%s session=%s", order.pk, session.id)
            expired = expired or session.id
    return False, expired


def _settle_intents(order: Order, customer: str) -> tuple[bool, str]:
    """Whether an intent made for the order was paid (and applied), and the newest one canceled here."""
    gw = gateway()
    listed = gw.call(lambda options: gw.v1.payment_intents.list(params={"customer": customer}, options=options))
    canceled = ""
    for intent in _made_for(order, listed):
        if intent.status in ("succeeded", "processing", "requires_capture"):
            Order.objects.filter(pk=order.pk, payment_intent_id="").update(payment_intent_id=intent.id)
            order.refresh_from_db()
            intent_apply(order=order, intent=intent.to_dict(), cause=f"{CAUSE}, but its intent {intent.id} was paid")
            return True, ""
        if intent.status in STILL_PAYABLE:
            gw.call(lambda options, intent=intent: gw.v1.payment_intents.cancel(intent.id, options=options))
            log.warning("unstarted order's intent canceled order=%s intent=%s", order.pk, intent.id)
            canceled = canceled or intent.id
    return False, canceled
