"""Stripe events that move orders: checkout completed, paid later, failed, expired; refunds from anywhere.

How an event finds its order, and how a session's state moves it, is the orders room's
(`orders.sessions`): nothing a payer can type names an order.

Each move goes through `order_transition`, so a duplicate or a late event changes
nothing more. An expiry is confirmed with Stripe before it is applied: an expired order
is final, and only Stripe knows whether the session was paid after all. A refund that
arrives before its payment is recorded waits (`EventNotReady`) and is tried again.
"""

from apps.payments.models import Order, OrderStatus
from apps.payments.orders import sessions
from apps.payments.orders.errors import RefundNotApplicable
from apps.payments.orders.lifecycle import order_transition
from apps.payments.orders.refunds import order_apply_refund
from apps.payments.webhooks.errors import EventNotReady


def on_session_paid(event: dict) -> str:
    return sessions.apply_session(event["data"]["object"], cause=f"{event['type']} {event['id']}")


def on_session_payment_failed(event: dict) -> str:
    order = sessions.order_for_session(event["data"]["object"])
    if order is None:
        return "ignored: no order of ours for this session"
    moved = order_transition(order_id=order.pk, to=OrderStatus.FAILED, cause=f"{event['type']} {event['id']}")
    return f"order {order.pk} failed" if moved else f"order {order.pk} unchanged ({order.status})"


def on_session_expired(event: dict) -> str:
    session = event["data"]["object"]
    if sessions.order_for_session(session) is None:
        return "ignored: no order of ours for this session"
    # Expired is final: apply what Stripe holds now (a paid session wins over a stale expiry).
    return sessions.apply_session(
        sessions.session_now(session["id"]), cause=f"{event['type']} {event['id']} (checked with Stripe)"
    )


def on_payment_failed(event: dict) -> str:
    order, _ = sessions.order_for_payment(event["data"]["object"]["id"])
    if order is None:
        return "ignored: no order of ours for this payment"
    moved = order_transition(order_id=order.pk, to=OrderStatus.FAILED, cause=f"{event['type']} {event['id']}")
    return f"order {order.pk} failed (the customer may try again)" if moved else f"order {order.pk} unchanged"


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


def on_charge_refunded(event: dict) -> str:
    charge = event["data"]["object"]
    order = _refund_order(charge.get("payment_intent"))
    if order is None:
        return "ignored: no order of ours for this charge"
    refunds = [r for r in (charge.get("refunds") or {}).get("data", []) if r.get("status") in ("succeeded", "pending")]
    applied = sum(_apply_refund(order, refund, f"{event['type']} {event['id']}") for refund in refunds)
    return f"order {order.pk}: {applied} refund(s) recorded"


def on_refund(event: dict) -> str:
    refund = event["data"]["object"]
    if refund.get("status") not in ("succeeded", "pending"):
        return f"ignored: refund {refund.get('status')}"
    order = _refund_order(refund.get("payment_intent"))
    if order is None:
        return "ignored: no order of ours for this refund"
    recorded = _apply_refund(order, refund, f"{event['type']} {event['id']}")
    return f"order {order.pk}: refund recorded" if recorded else f"order {order.pk}: refund known already"
