"""Stripe events that move orders: checkout completed, paid later, failed, expired; refunds from anywhere.

An event finds its order only through an id we stored when we created the Stripe object
(the Checkout Session, or the payment intent Stripe made for it): nothing a payer can
type (`client_reference_id` on a payment link's URL, metadata) names an order. A
session of one of our payment links makes an order of its own.

Each move goes through `orders.order_transition`, so a duplicate or a late event changes
nothing more. An expiry is confirmed with Stripe before it is applied: an expired order
is final, and only Stripe knows whether the session was paid after all. A refund that
arrives before its payment is recorded waits (`EventNotReady`) and is tried again.
"""

import logging

from django.db import IntegrityError, transaction

from apps.catalog.models import Price
from apps.payments import orders
from apps.payments.models import MirrorKind, MirrorRecord, Order, OrderStatus, PaymentLink
from apps.payments.stripe_client import gateway
from apps.payments.webhook_handlers import EventNotReady, handles
from apps.users.models import User

log = logging.getLogger("apps.payments.orders")


def _session_now(session_id: str) -> dict:
    gw = gateway()
    return gw.call(lambda options: gw.v1.checkout.sessions.retrieve(session_id, options=options)).to_dict()


def _order_for_session(session: dict) -> Order | None:
    return Order.objects.filter(checkout_session_id=session["id"]).first()


def _our_link(session: dict) -> PaymentLink | None:
    link_id = session.get("payment_link")
    return PaymentLink.objects.filter(stripe_id=link_id).first() if link_id else None


def apply_session(session: dict, cause: str) -> str:
    """Bring the order of a Checkout Session in line with the session (from an event or a fresh fetch)."""
    order = _order_for_session(session)
    if order is None and session.get("status") == "complete":
        link = _our_link(session)
        order = _order_from_payment_link(session, link) if link is not None else None
    if order is None:
        return "ignored: no order of ours for this session"
    email = ((session.get("customer_details") or {}).get("email")) or ""
    paid = session.get("status") == "complete" and session.get("payment_status") in ("paid", "no_payment_required")
    if paid:
        return orders.order_payment_settle(
            order_id=order.pk,
            amount=session.get("amount_total"),
            currency=session.get("currency"),
            payment_intent_id=session.get("payment_intent") or "",
            email=email,
            cause=cause,
        )
    if session.get("status") == "expired":
        moved = orders.order_transition(order_id=order.pk, to=OrderStatus.EXPIRED, cause=cause)
        return f"order {order.pk} expired" if moved else f"order {order.pk} unchanged ({order.status})"
    if session.get("status") == "complete":
        return f"order {order.pk} awaits its delayed payment"
    return f"order {order.pk} unchanged (session still open)"


def _order_from_payment_link(session: dict, link: PaymentLink) -> Order:
    """A payment through one of our links becomes an order of its own, priced from the catalog as it is
    now (a link made before a price change takes the old amount: the order then goes to review)."""
    prices = Price.objects.select_related("product").in_bulk([line["price"] for line in link.lines])
    lines = [orders.CartLine(price=prices[line["price"]], quantity=line["quantity"]) for line in link.lines]
    email = ((session.get("customer_details") or {}).get("email")) or session.get("customer_email") or ""
    try:
        with transaction.atomic():
            return orders.order_create(
                user=_link_payer(session, email),
                lines=lines,
                email=email,
                payment_link_id=link.stripe_id,
                checkout_session_id=session["id"],
            )
    except IntegrityError:  # a second event about the same session made it a moment ago
        return Order.objects.get(checkout_session_id=session["id"])


def _link_payer(session: dict, email: str) -> User | None:
    """Whose order a link payment is: the user of our mirrored customer, or the user who proved they own
    the email the payer typed; anyone else's is a guest order (a typed address proves nothing)."""
    if session.get("customer"):
        record = MirrorRecord.objects.filter(kind=MirrorKind.USER, stripe_id=session["customer"]).first()
        user = User.objects.filter(pk=record.object_id).first() if record else None
        if user is not None:
            return user
    if email:
        return User.objects.filter(email=email.strip().lower(), email_verified=True).first()
    return None


def _order_for_payment(payment_intent_id: str | None) -> tuple[Order | None, dict | None]:
    """The order of a payment intent, and the Checkout Session Stripe made it for (when we had to ask).

    The intent's id is stored once the session is paid; before that (a declined card, a refund
    that overtook the payment) Stripe tells which of our sessions the intent belongs to.
    """
    if not payment_intent_id:
        return None, None
    order = Order.objects.filter(payment_intent_id=payment_intent_id).first()
    if order is not None:
        return order, None
    gw = gateway()
    found = gw.call(
        lambda options: gw.v1.checkout.sessions.list(
            params={"payment_intent": payment_intent_id, "limit": 1}, options=options
        )
    )
    session = found.data[0].to_dict() if found.data else None
    return (_order_for_session(session) if session else None), session


@handles("checkout.session.completed", "checkout.session.async_payment_succeeded")
def on_session_paid(event: dict) -> str:
    return apply_session(event["data"]["object"], cause=f"{event['type']} {event['id']}")


@handles("checkout.session.async_payment_failed")
def on_session_payment_failed(event: dict) -> str:
    order = _order_for_session(event["data"]["object"])
    if order is None:
        return "ignored: no order of ours for this session"
    moved = orders.order_transition(order_id=order.pk, to=OrderStatus.FAILED, cause=f"{event['type']} {event['id']}")
    return f"order {order.pk} failed" if moved else f"order {order.pk} unchanged ({order.status})"


@handles("checkout.session.expired")
def on_session_expired(event: dict) -> str:
    session = event["data"]["object"]
    if _order_for_session(session) is None:
        return "ignored: no order of ours for this session"
    # Expired is final: apply what Stripe holds now (a paid session wins over a stale expiry).
    return apply_session(_session_now(session["id"]), cause=f"{event['type']} {event['id']} (checked with Stripe)")


@handles("payment_intent.payment_failed")
def on_payment_failed(event: dict) -> str:
    order, _ = _order_for_payment(event["data"]["object"]["id"])
    if order is None:
        return "ignored: no order of ours for this payment"
    moved = orders.order_transition(order_id=order.pk, to=OrderStatus.FAILED, cause=f"{event['type']} {event['id']}")
    return f"order {order.pk} failed (the customer may try again)" if moved else f"order {order.pk} unchanged"


def _refund_order(payment_intent_id: str | None) -> Order | None:
    """The order a refund of this payment belongs to; `EventNotReady` while a link payment's order is not
    made yet (whether the order can take the refund is `order_apply_refund`'s to say)."""
    order, session = _order_for_payment(payment_intent_id)
    if order is None and session is not None and _our_link(session) is not None:
        raise EventNotReady(f"the order of link session {session['id']} is not made yet")
    return order


def _apply_refund(order: Order, refund: dict, cause: str) -> bool:
    try:
        return orders.order_apply_refund(
            order_id=order.pk,
            stripe_refund_id=refund["id"],
            amount=refund["amount"],
            reason=refund.get("reason") or "",
            cause=cause,
        )
    except orders.RefundNotApplicable as error:
        raise EventNotReady(str(error)) from error


@handles("charge.refunded")
def on_charge_refunded(event: dict) -> str:
    charge = event["data"]["object"]
    order = _refund_order(charge.get("payment_intent"))
    if order is None:
        return "ignored: no order of ours for this charge"
    refunds = [r for r in (charge.get("refunds") or {}).get("data", []) if r.get("status") in ("succeeded", "pending")]
    applied = sum(_apply_refund(order, refund, f"{event['type']} {event['id']}") for refund in refunds)
    return f"order {order.pk}: {applied} refund(s) recorded"


@handles("refund.created", "refund.updated")
def on_refund(event: dict) -> str:
    refund = event["data"]["object"]
    if refund.get("status") not in ("succeeded", "pending"):
        return f"ignored: refund {refund.get('status')}"
    order = _refund_order(refund.get("payment_intent"))
    if order is None:
        return "ignored: no order of ours for this refund"
    recorded = _apply_refund(order, refund, f"{event['type']} {event['id']}")
    return f"order {order.pk}: refund recorded" if recorded else f"order {order.pk}: refund known already"
