"""Stripe events that move orders and their payments: a checkout completed, paid later, failed, expired; an
app's intent paid, declined, canceled; the card of each charge; refunds from anywhere.

How an event finds its order, and how a session's state moves it, is `orders.sessions`: nothing a payer
can type names an order.

Each move goes through `order_transition`, so a duplicate or a late event changes
nothing more. An expiry is confirmed with Stripe before it is applied: an expired order
is final, and only Stripe knows whether the session was paid after all. A refund that
arrives before its payment is recorded waits (`EventNotReady`) and is tried again.
"""

from apps.payments.gateway.installation import is_ours
from apps.payments.orders import intents, payments, sessions
from apps.payments.orders.errors import EventNotReady, RefundNotApplicable
from apps.payments.orders.lifecycle import order_transition
from apps.payments.orders.models import Order, OrderStatus, Payment
from apps.payments.orders.outcomes import OrderOutcome
from apps.payments.orders.refunds import order_apply_refund
from config.outcomes import Outcome


def _cause(event: dict) -> str:
    return f"{event['type']} {event['id']}"


def on_session_paid(event: dict) -> Outcome:
    return sessions.apply_session(event["data"]["object"], cause=_cause(event))


def on_session_payment_failed(event: dict) -> Outcome:
    order = sessions.order_for_session(event["data"]["object"])
    if order is None:
        return OrderOutcome.NO_ORDER_FOR_SESSION.of()
    moved = order_transition(order_id=order.pk, to=OrderStatus.FAILED, cause=_cause(event))
    if moved:
        return OrderOutcome.FAILED.of(order=order.pk)
    return OrderOutcome.UNCHANGED.of(order=order.pk, status=order.status)


def on_session_expired(event: dict) -> Outcome:
    session = event["data"]["object"]
    if sessions.order_for_session(session) is None:
        return OrderOutcome.NO_ORDER_FOR_SESSION.of()
    # Expired is final: apply what Stripe holds now (a paid session wins over a stale expiry).
    return sessions.apply_session(sessions.session_now(session["id"]), cause=f"{_cause(event)} (checked with Stripe)")


def _order_of_intent(payment_intent_id: str) -> Order | None:
    """The order of an intent, through the ids we stored: its payment's, or the order's paying intent."""
    payment = Payment.objects.select_related("order").filter(payment_intent_id=payment_intent_id).first()
    if payment is not None:
        return payment.order
    return Order.objects.filter(payment_intent_id=payment_intent_id).first()


def on_intent(event: dict) -> Outcome:
    """An intent paid, processing, waiting for 3D Secure, declined or canceled: its payment and order follow."""
    intent = event["data"]["object"]
    order, session_id = _order_of_intent(intent["id"]), ""
    if order is None and event["type"] == "payment_intent.payment_failed":
        # A card declined on a Checkout page: the session stays open, and Stripe says which session it was.
        order, session = sessions.order_for_payment(intent["id"])
        session_id = session["id"] if order is not None and session else ""
    elif order is None and intent.get("status") in ("succeeded", "processing") and is_ours(intent.get("metadata")):
        # Ours (a session's, a link's or an app's intent): its order will be recorded here, so the event waits.
        raise EventNotReady(f"the order of intent {intent['id']} is not recorded yet (its session comes next)")
    if order is None:
        return OrderOutcome.NO_ORDER_FOR_PAYMENT.of()
    return intents.intent_apply(
        order=order,
        intent=intent,
        cause=_cause(event),
        at=event.get("created") or 0,
        checkout_session_id=session_id,
    )


def on_charge(event: dict) -> Outcome:
    """A charge says which card paid (or was declined): stored on the payment of its intent."""
    charge = event["data"]["object"]
    payment = payments.payment_note_charge(charge=charge)
    if payment is not None:
        card = f"{payment.card_brand} {payment.card_last4}".strip()
        return OrderOutcome.CARD_NOTED.of(payment_intent=payment.payment_intent_id, card=card)
    if charge.get("status") in ("succeeded", "pending") and is_ours(charge.get("metadata")):
        raise EventNotReady(f"the payment of intent {charge.get('payment_intent')} is not recorded yet")
    return OrderOutcome.NO_PAYMENT_FOR_CHARGE.of()


def _refund_order(payment_intent_id: str | None) -> Order | None:
    """The order a refund of this payment belongs to; `EventNotReady` while a link payment's order is not
    made yet (whether the order can take the refund is `order_apply_refund`'s to say)."""
    order, session = sessions.order_for_payment(payment_intent_id)
    if order is None and session is not None and sessions.our_link(session) is not None:
        raise EventNotReady(f"the order of link session {session['id']} is not made yet")
    return order


def _apply_refund(order: Order, refund: dict, cause: str) -> bool:
    try:
        return order_apply_refund(
            order_id=order.pk,
            stripe_refund_id=refund["id"],
            amount=refund["amount"],
            reason=refund.get("reason") or "",
            cause=cause,
        )
    except RefundNotApplicable as error:
        raise EventNotReady(str(error)) from error


def on_charge_refunded(event: dict) -> Outcome:
    charge = event["data"]["object"]
    order = _refund_order(charge.get("payment_intent"))
    if order is None:
        return OrderOutcome.NO_ORDER_FOR_CHARGE.of()
    refunds = [r for r in (charge.get("refunds") or {}).get("data", []) if r.get("status") in ("succeeded", "pending")]
    applied = sum(_apply_refund(order, refund, _cause(event)) for refund in refunds)
    return OrderOutcome.REFUNDS_RECORDED.of(order=order.pk, count=applied)


def on_refund(event: dict) -> Outcome:
    refund = event["data"]["object"]
    if refund.get("status") not in ("succeeded", "pending"):
        return OrderOutcome.REFUND_NOT_MADE.of(status=refund.get("status"))
    order = _refund_order(refund.get("payment_intent"))
    if order is None:
        return OrderOutcome.NO_ORDER_FOR_REFUND.of()
    recorded = _apply_refund(order, refund, _cause(event))
    return (OrderOutcome.REFUND_RECORDED if recorded else OrderOutcome.REFUND_KNOWN).of(order=order.pk)
