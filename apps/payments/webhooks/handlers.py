"""Which handler each Stripe event type has: the whole list, in one table. A type not listed here is
stored and marked ignored; adding a handler means adding its line here. The handlers live in the slice whose
data they change (`mirror.events`, `orders.events`, `billing.events`)."""

from collections.abc import Callable

from apps.payments.billing import events as billing_events
from apps.payments.mirror import events as catalog_events
from apps.payments.orders import events as order_events
from config.outcomes import Outcome

Handler = Callable[[dict], Outcome]


def by_session_mode(*, payment: Handler, subscription: Handler) -> Handler:
    """A Checkout Session's events go to orders (`mode: payment`) or to billing (`mode: subscription`)."""

    def handle(event: dict) -> Outcome:
        if event["data"]["object"].get("mode") == "subscription":
            return subscription(event)
        return payment(event)

    return handle


HANDLERS: dict[str, Handler] = {
    # The catalog: dashboard edits come back; our own writes echo and change nothing.
    "product.created": catalog_events.on_product,
    "product.updated": catalog_events.on_product,
    "product.deleted": catalog_events.on_product,
    "price.created": catalog_events.on_price,
    "price.updated": catalog_events.on_price,
    "price.deleted": catalog_events.on_price,
    "customer.updated": catalog_events.on_customer_updated,
    "customer.deleted": catalog_events.on_customer_deleted,
    # Checkouts: an order paid, failed or expired; a subscription started (or its checkout expired).
    "checkout.session.completed": by_session_mode(
        payment=order_events.on_session_paid, subscription=billing_events.on_session
    ),
    "checkout.session.async_payment_succeeded": by_session_mode(
        payment=order_events.on_session_paid, subscription=billing_events.on_session
    ),
    "checkout.session.async_payment_failed": order_events.on_session_payment_failed,
    "checkout.session.expired": by_session_mode(
        payment=order_events.on_session_expired, subscription=billing_events.on_session
    ),
    # Payments: each intent (a session's or an app's) and the card of each of its charges.
    "payment_intent.succeeded": order_events.on_intent,
    "payment_intent.processing": order_events.on_intent,
    "payment_intent.requires_action": order_events.on_intent,
    "payment_intent.payment_failed": order_events.on_intent,
    "payment_intent.canceled": order_events.on_intent,
    "charge.succeeded": order_events.on_charge,
    "charge.pending": order_events.on_charge,
    "charge.failed": order_events.on_charge,
    "charge.refunded": order_events.on_charge_refunded,
    "refund.created": order_events.on_refund,
    "refund.updated": order_events.on_refund,
    # Subscriptions and their invoices.
    "customer.subscription.created": billing_events.on_subscription,
    "customer.subscription.updated": billing_events.on_subscription,
    "customer.subscription.deleted": billing_events.on_subscription,
    "customer.subscription.trial_will_end": billing_events.on_subscription,
    "invoice.paid": billing_events.on_invoice,
    "invoice.payment_failed": billing_events.on_invoice,
    "invoice.payment_action_required": billing_events.on_invoice,
    "invoice.upcoming": billing_events.on_invoice,
}
