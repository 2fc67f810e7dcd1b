"""Payment Intents for apps (Stripe Elements, the iOS and Android SDKs): an order and its intent for a cart.

The app pays the intent itself, with the client secret and the publishable key; Stripe's
events then move the order (`intent_apply`), exactly as a Checkout Session's do. The order
is found through the intent id stored here when the intent was made; the intent carries
the order's id in its metadata only for people reading the dashboard.

The client secret is never stored: a repeated request gets it from Stripe again.
"""

from dataclasses import dataclass

import stripe
from django.conf import settings
from django.db import transaction

from apps.payments.gateway.client import gateway
from apps.payments.gateway.errors import StripeRefused
from apps.payments.gateway.installation import NAMESPACE_KEY, installation_namespace
from apps.payments.mirror.models import MirrorKind
from apps.payments.mirror.refs import ensure_in_stripe
from apps.payments.orders.checkout import canceled_unless_started, order_for_cart
from apps.payments.orders.errors import AppPaymentsNotConfigured, OrderActionRefused
from apps.payments.orders.idempotency import request_fingerprint
from apps.payments.orders.lifecycle import CartLine, order_payment_settle, order_transition
from apps.payments.orders.models import Order, OrderStatus, Payment, PaymentStatus
from apps.payments.orders.outcomes import OrderOutcome
from apps.payments.orders.payments import payment_record, payment_status_of
from apps.users.models import User
from config.outcomes import Outcome

# What Stripe lets the payer still do with an intent in these states: pay it, with a card or 3D Secure.
STILL_PAYABLE = ("requires_payment_method", "requires_confirmation", "requires_action")


@dataclass(frozen=True)
class IntentStarted:
    order: Order
    payment: Payment
    client_secret: str
    publishable_key: str


def publishable_key() -> str:
    key = settings.STRIPE_PUBLISHABLE_KEY
    if not key:
        raise AppPaymentsNotConfigured("STRIPE_PUBLISHABLE_KEY is not configured: an app could not pay the intent.")
    return key


def intent_for_cart(*, user: User, lines: list[CartLine]) -> IntentStarted:
    """The order and payment intent for a cart. The same user sending the same cart again within
    `CHECKOUT_REUSE_SECONDS` gets the same intent back while it can still be paid (Stripe's advice: one
    intent per order)."""
    key = publishable_key()
    fingerprint = request_fingerprint(
        {"lines": [(line.price.pk, line.quantity) for line in lines], "paid_with": "payment_intent"}
    )
    customer = ensure_in_stripe(MirrorKind.USER, user.pk)  # first: a cart Stripe cannot take leaves no order
    order = order_for_cart(user=user, lines=lines, fingerprint=fingerprint)
    if order.payment_intent_id:
        intent = _payable_intent(order.payment_intent_id)
        if intent is not None:
            return _started_before(order, client_secret=intent.client_secret, key=key)
        # Paid, processing or canceled a moment ago, its event still on the way (it settles that order): the
        # customer buys the cart again, in an order of their own, not with an intent that can no longer be paid.
        order = order_for_cart(user=user, lines=lines, fingerprint=fingerprint, settled=order)
        if order.payment_intent_id:  # a twin request made it a moment ago
            return _started_before(order, client_secret=client_secret_of(order.payment_intent_id), key=key)
    return intent_start(order=order, key=key, customer=customer)


def _started_before(order: Order, *, client_secret: str, key: str) -> IntentStarted:
    return IntentStarted(
        order=order,
        payment=Payment.objects.get(payment_intent_id=order.payment_intent_id),
        client_secret=client_secret,
        publishable_key=key,
    )


def _payable_intent(payment_intent_id: str) -> stripe.PaymentIntent | None:
    """The intent while the app can still pay it; None once Stripe holds it paid, processing or canceled, or
    holds none. While Stripe cannot be reached `StripeUnavailable` goes up: the order is kept, and a retry
    gets it back (its client secret can only come from Stripe anyway)."""
    gw = gateway()
    intent = gw.find_for_client(lambda options: gw.v1.payment_intents.retrieve(payment_intent_id, options=options))
    return intent if intent is not None and intent.status in STILL_PAYABLE else None


def intent_start(*, order: Order, key: str, customer: str) -> IntentStarted:
    """Create the order's payment intent (once: the key is the order's) for exactly the order's total, for the
    user's Stripe customer.

    If Stripe cannot be reached, or refuses, the order is canceled: none is left pending without an intent.
    """
    with canceled_unless_started(order, "payment intent"):
        reference = {"order": str(order.pk), NAMESPACE_KEY: installation_namespace()}
        params = {
            "amount": order.amount_total,
            "currency": order.currency,
            "metadata": reference,
            "description": f"Order {order.pk}",
            "customer": customer,
        }
        gw = gateway()
        intent = gw.call(
            lambda options: gw.v1.payment_intents.create(params=params, options=options),
            idempotency_key=f"order:{order.pk}:payment-intent",
        )
    # Together: a twin request that finds the order's intent id finds its payment too.
    with transaction.atomic():
        Order.objects.filter(pk=order.pk).update(payment_intent_id=intent.id, stripe_customer_id=customer)
        order.refresh_from_db()
        payment = payment_record(order=order, intent=intent.to_dict())
    return IntentStarted(order=order, payment=payment, client_secret=intent.client_secret, publishable_key=key)


def client_secret_of(payment_intent_id: str) -> str:
    gw = gateway()
    return gw.call_for_client(
        lambda options: gw.v1.payment_intents.retrieve(payment_intent_id, options=options)
    ).client_secret


def intent_apply(*, order: Order, intent: dict, cause: str, at: int = 0, checkout_session_id: str = "") -> Outcome:
    """Bring an order and its payment in line with what Stripe says of the intent (an event, or a fetch).

    Succeeded: the order is paid if Stripe took exactly its total (else it goes to review). Failed: the
    order is failed, and may still be paid with another card. Canceled: an app's order is canceled (a
    Checkout Session's order follows its session instead).
    """
    payment = payment_record(order=order, intent=intent, at=at, checkout_session_id=checkout_session_id)
    status = intent.get("status")
    if status == "succeeded":
        return order_payment_settle(
            order_id=order.pk,
            amount=intent.get("amount_received"),
            currency=intent.get("currency"),
            payment_intent_id=intent["id"],
            cause=cause,
        )
    moved, to = False, None
    if payment_status_of(intent) == PaymentStatus.FAILED:
        to = OrderStatus.FAILED
    elif status == "canceled" and not order.checkout_session_id:
        to = OrderStatus.CANCELED
    if to is not None:
        moved = order_transition(order_id=order.pk, to=to, cause=cause)
    if moved:
        return OrderOutcome.MOVED_BY_INTENT.of(order=order.pk, status=to, payment_status=payment.status)
    return OrderOutcome.UNCHANGED_BY_INTENT.of(order=order.pk, payment_status=payment.status, intent_status=status)


def intent_cancel(*, order: Order, by: User) -> bool:
    """Cancel a pending order's intent in Stripe. False when Stripe holds it paid or processing: what
    Stripe holds is applied instead, and decides (a paid order is then refunded, not canceled)."""
    gw = gateway()
    cause = f"cancel by user {by.pk}"
    try:
        intent = gw.call(
            lambda options: gw.v1.payment_intents.cancel(
                order.payment_intent_id, params={"cancellation_reason": "requested_by_customer"}, options=options
            ),
        )  # no fixed key: a cancel is idempotent itself, and a refusal kept under a key would be replayed for a day
    except stripe.InvalidRequestError as error:
        intent = gw.call_for_client(
            lambda options: gw.v1.payment_intents.retrieve(order.payment_intent_id, options=options)
        )
        if intent.status in STILL_PAYABLE:  # refused for another reason: say so, change nothing
            raise StripeRefused(error) from error
        intent_apply(order=order, intent=intent.to_dict(), cause=f"{cause} found the intent {intent.status}")
        if intent.status == "processing":
            raise OrderActionRefused(
                "The payment is being processed by the bank; the order can be canceled once it completes."
            ) from error
        return intent.status == "canceled"
    except stripe.StripeError as error:
        raise StripeRefused(error) from error
    payment_record(order=order, intent=intent.to_dict())
    return True


def intent_sync(*, order: Order, by: User) -> None:
    """Ask Stripe for the order's intent and apply it (an app's success screen need not wait for the webhook)."""
    gw = gateway()
    intent = gw.call_for_client(
        lambda options: gw.v1.payment_intents.retrieve(order.payment_intent_id, options=options)
    )
    intent_apply(order=order, intent=intent.to_dict(), cause=f"sync requested by user {by.pk}")
