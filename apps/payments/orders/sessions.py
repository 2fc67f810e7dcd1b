"""An order and its Checkout Session: the session's state applied to the order, from an event or a fetch;
the customer's cancel and the success page's sync.

An order is found only through an id we stored when we created the Stripe object (the
Checkout Session, or the payment intent Stripe made for it): nothing a payer can type
(`client_reference_id` on a payment link's URL, metadata) names an order. A session of
one of our payment links makes an order of its own.
"""

import stripe
from django.db import IntegrityError, transaction

from apps.catalog.models import Price
from apps.payments.gateway.client import gateway
from apps.payments.gateway.errors import StripeRefused
from apps.payments.mirror.models import MirrorKind, MirrorRecord
from apps.payments.orders import intents
from apps.payments.orders.lifecycle import CartLine, order_create, order_payment_settle, order_transition
from apps.payments.orders.models import NOTHING_LEFT_TO_CANCEL, REFUNDABLE_STATUSES, Order, OrderStatus, PaymentLink
from apps.payments.orders.outcomes import OrderOutcome
from apps.payments.orders.payments import payment_record_session
from apps.payments.orders.refunds import order_refund, order_self_refund_check
from apps.users.models import User
from config.outcomes import Outcome


def session_now(session_id: str) -> dict:
    gw = gateway()
    return gw.call(lambda options: gw.v1.checkout.sessions.retrieve(session_id, options=options)).to_dict()


def order_for_session(session: dict) -> Order | None:
    return Order.objects.filter(checkout_session_id=session["id"]).first()


def our_link(session: dict) -> PaymentLink | None:
    link_id = session.get("payment_link")
    return PaymentLink.objects.filter(stripe_id=link_id).first() if link_id else None


def apply_session(session: dict, cause: str) -> Outcome:
    """Bring the order of a Checkout Session in line with the session (from an event or a fresh fetch). A
    subscription-mode session is billing's (`webhooks.handlers` routes it there) and makes no order."""
    order = order_for_session(session)
    if order is None and session.get("status") == "complete":
        link = our_link(session)
        order = _order_from_payment_link(session, link) if link is not None else None
    if order is None:
        return OrderOutcome.NO_ORDER_FOR_SESSION.of()
    email = ((session.get("customer_details") or {}).get("email")) or ""
    paid = session.get("status") == "complete" and session.get("payment_status") in ("paid", "no_payment_required")
    if session.get("status") == "complete":
        payment_record_session(order=order, session=session)
    if paid:
        return order_payment_settle(
            order_id=order.pk,
            amount=session.get("amount_total"),
            currency=session.get("currency"),
            payment_intent_id=session.get("payment_intent") or "",
            email=email,
            cause=cause,
        )
    if session.get("status") == "expired":
        moved = order_transition(order_id=order.pk, to=OrderStatus.EXPIRED, cause=cause)
        return (
            OrderOutcome.EXPIRED.of(order=order.pk)
            if moved
            else OrderOutcome.UNCHANGED.of(order=order.pk, status=order.status)
        )
    if session.get("status") == "complete":
        return OrderOutcome.AWAITS_DELAYED_PAYMENT.of(order=order.pk)
    return OrderOutcome.SESSION_STILL_OPEN.of(order=order.pk)


def _order_from_payment_link(session: dict, link: PaymentLink) -> Order:
    """A payment through one of our links becomes an order of its own, priced from the catalog as it is
    now (a link made before a price change takes the old amount: the order then goes to review)."""
    prices = Price.objects.select_related("product").in_bulk([line["price"] for line in link.lines])
    lines = [CartLine(price=prices[line["price"]], quantity=line["quantity"]) for line in link.lines]
    email = ((session.get("customer_details") or {}).get("email")) or session.get("customer_email") or ""
    try:
        with transaction.atomic():
            return order_create(
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


def order_for_payment(payment_intent_id: str | None) -> tuple[Order | None, dict | None]:
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
    return (order_for_session(session) if session else None), session


def order_cancel(*, order: Order, by: User) -> Order:
    """Cancel a pending order (its Checkout Session is expired in Stripe) or refund a paid one in full
    (an owner only within `ORDER_SELF_REFUND_DAYS` of paying; staff with `refund_order` at any time).

    An order with nothing left to cancel (canceled, expired, refunded) is answered as it stands:
    a cancel sent again because its first answer was lost (a Stripe 500 after the session was expired, a
    dropped connection) ends where the first one did, not in an error."""
    order.refresh_from_db()
    by_id = by.pk
    if order.status in NOTHING_LEFT_TO_CANCEL:
        return order
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
                session = gw.call_for_client(
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
        elif order.payment_intent_id and not intents.intent_cancel(order=order, by=by):
            order.refresh_from_db()  # Stripe took the money meanwhile: the order is refunded instead
            return order_cancel(order=order, by=by) if order.status in REFUNDABLE_STATUSES else order
        order_transition(order_id=order.pk, to=OrderStatus.CANCELED, cause=f"canceled by user {by_id}")
    order.refresh_from_db()
    return order


def order_sync(*, order: Order, by: User) -> Order:
    """Ask Stripe for the order's Checkout Session or intent and apply it (the success page, or an app's
    success screen, does not wait for the webhook)."""
    if order.status not in (OrderStatus.PENDING, OrderStatus.FAILED):
        return order
    if not order.checkout_session_id and order.payment_intent_id:
        intents.intent_sync(order=order, by=by)
        order.refresh_from_db()
    elif order.checkout_session_id:
        gw = gateway()
        session = gw.call_for_client(
            lambda options: gw.v1.checkout.sessions.retrieve(order.checkout_session_id, options=options)
        )
        apply_session(session.to_dict(), cause=f"sync requested by user {by.pk}")
        order.refresh_from_db()
    return order
