"""Stripe events that move orders: checkout completed, paid later, failed, expired; refunds from anywhere.

Each goes through `orders.order_transition`, so a duplicate or a late event changes
nothing more. An expiry is confirmed with Stripe before it is applied: an expired
order is final, and only Stripe knows whether the session was paid after all.
"""

import logging

from django.db import transaction

from apps.catalog.models import Price
from apps.payments import orders
from apps.payments.models import MirrorKind, MirrorRecord, Order, OrderStatus
from apps.payments.stripe_client import gateway
from apps.payments.webhook_handlers import handles
from apps.users.models import User

log = logging.getLogger("apps.payments.orders")


def _order_by_reference(reference) -> Order | None:
    """The order an object names in `metadata.order` (or `client_reference_id`), as we set it."""
    if reference and str(reference).isdigit():
        return Order.objects.filter(pk=int(reference)).first()
    return None


def _order_for_session(session: dict) -> Order | None:
    reference = (session.get("metadata") or {}).get("order") or session.get("client_reference_id")
    order = _order_by_reference(reference)
    return order or Order.objects.filter(checkout_session_id=session["id"]).first()


def _session_now(session_id: str) -> dict:
    gw = gateway()
    return gw.call(lambda options: gw.v1.checkout.sessions.retrieve(session_id, options=options)).to_dict()


def apply_session(session: dict, cause: str) -> str:
    """Bring the order of a Checkout Session in line with the session (from an event or a fresh fetch)."""
    order = _order_for_session(session)
    if order is None and session.get("payment_link") and session.get("status") == "complete":
        order = _order_from_payment_link(session)
    if order is None:
        return "ignored: no order for this session"
    email = ((session.get("customer_details") or {}).get("email")) or ""
    paid = session.get("status") == "complete" and session.get("payment_status") in ("paid", "no_payment_required")
    if paid:
        changes = {"payment_intent_id": session.get("payment_intent") or ""}
        if email and not order.email:
            changes["email"] = email
        moved = orders.order_transition(order_id=order.pk, to=OrderStatus.PAID, cause=cause, **changes)
        return f"order {order.pk} paid" if moved else f"order {order.pk} unchanged ({order.status})"
    if session.get("status") == "expired":
        moved = orders.order_transition(order_id=order.pk, to=OrderStatus.EXPIRED, cause=cause)
        return f"order {order.pk} expired" if moved else f"order {order.pk} unchanged ({order.status})"
    if session.get("status") == "complete":
        return f"order {order.pk} awaits its delayed payment"
    return f"order {order.pk} unchanged (session still open)"


def _order_from_payment_link(session: dict) -> Order | None:
    """A payment through a link becomes an order: the customer's user, or one with that email, or a guest."""
    existing = Order.objects.filter(checkout_session_id=session["id"]).first()
    if existing is not None:
        return existing
    gw = gateway()
    items = gw.call(lambda options: gw.v1.checkout.sessions.line_items.list(session["id"], options=options))
    lines = []
    for item in items.data:
        record = MirrorRecord.objects.filter(kind=MirrorKind.PRICE, stripe_id=item.price.id).first()
        price = Price.objects.select_related("product").filter(pk=record.object_id).first() if record else None
        if price is None:
            log.warning("payment link line with an unknown price session=%s price=%s", session["id"], item.price.id)
            return None
        lines.append(orders.CartLine(price=price, quantity=item.quantity))
    email = ((session.get("customer_details") or {}).get("email")) or session.get("customer_email") or ""
    user = None
    if session.get("customer"):
        record = MirrorRecord.objects.filter(kind=MirrorKind.USER, stripe_id=session["customer"]).first()
        user = User.objects.filter(pk=record.object_id).first() if record else None
    if user is None and email:
        user = User.objects.filter(email=email.lower()).first()
    with transaction.atomic():
        order = orders.order_create(user=user, lines=lines, email=email, payment_link_id=session["payment_link"])
        Order.objects.filter(pk=order.pk).update(checkout_session_id=session["id"])
    order.refresh_from_db()
    return order


@handles("checkout.session.completed", "checkout.session.async_payment_succeeded")
def on_session_paid(event: dict) -> str:
    return apply_session(event["data"]["object"], cause=f"{event['type']} {event['id']}")


@handles("checkout.session.async_payment_failed")
def on_session_payment_failed(event: dict) -> str:
    order = _order_for_session(event["data"]["object"])
    if order is None:
        return "ignored: no order for this session"
    moved = orders.order_transition(order_id=order.pk, to=OrderStatus.FAILED, cause=f"{event['type']} {event['id']}")
    return f"order {order.pk} failed" if moved else f"order {order.pk} unchanged ({order.status})"


@handles("checkout.session.expired")
def on_session_expired(event: dict) -> str:
    session = event["data"]["object"]
    if _order_for_session(session) is None:
        return "ignored: no order for this session"
    # Expired is final: apply what Stripe holds now (a paid session wins over a stale expiry).
    return apply_session(_session_now(session["id"]), cause=f"{event['type']} {event['id']} (checked with Stripe)")


@handles("payment_intent.payment_failed")
def on_payment_failed(event: dict) -> str:
    intent = event["data"]["object"]
    order = _order_for_payment(intent["id"], intent.get("metadata"))
    if order is None:
        return "ignored: no order for this payment"
    moved = orders.order_transition(order_id=order.pk, to=OrderStatus.FAILED, cause=f"{event['type']} {event['id']}")
    return f"order {order.pk} failed (the customer may try again)" if moved else f"order {order.pk} unchanged"


def _order_for_payment(payment_intent_id: str | None, metadata: dict | None) -> Order | None:
    order = _order_by_reference((metadata or {}).get("order"))
    if order is None and payment_intent_id:
        order = Order.objects.filter(payment_intent_id=payment_intent_id).first()
    return order


@handles("charge.refunded")
def on_charge_refunded(event: dict) -> str:
    charge = event["data"]["object"]
    order = _order_for_payment(charge.get("payment_intent"), charge.get("metadata"))
    if order is None:
        return "ignored: no order for this charge"
    applied = 0
    for refund in (charge.get("refunds") or {}).get("data", []):
        if refund.get("status") in ("succeeded", "pending"):
            applied += orders.order_apply_refund(
                order_id=order.pk,
                stripe_refund_id=refund["id"],
                amount=refund["amount"],
                reason=refund.get("reason") or "",
                cause=f"{event['type']} {event['id']}",
            )
    return f"order {order.pk}: {applied} refund(s) recorded"


@handles("refund.created", "refund.updated")
def on_refund(event: dict) -> str:
    refund = event["data"]["object"]
    if refund.get("status") not in ("succeeded", "pending"):
        return f"ignored: refund {refund.get('status')}"
    order = _order_for_payment(refund.get("payment_intent"), refund.get("metadata"))
    if order is None:
        return "ignored: no order for this refund"
    recorded = orders.order_apply_refund(
        order_id=order.pk,
        stripe_refund_id=refund["id"],
        amount=refund["amount"],
        reason=refund.get("reason") or "",
        cause=f"{event['type']} {event['id']}",
    )
    return f"order {order.pk}: refund recorded" if recorded else f"order {order.pk}: refund known already"
