"""Which handler each Stripe event type has: the whole list, in one table. A type not listed here is
stored and marked ignored; adding a handler means adding its line here."""

from collections.abc import Callable

from apps.payments.webhooks import catalog_events, order_events, subscription_events

Handler = Callable[[dict], str]

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
    # Orders: paid, failed, expired, refunded.
    "checkout.session.completed": order_events.on_session_paid,
    "checkout.session.async_payment_succeeded": order_events.on_session_paid,
    "checkout.session.async_payment_failed": order_events.on_session_payment_failed,
    "checkout.session.expired": order_events.on_session_expired,
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
    # Subscriptions and their invoices (a subscription-mode checkout completes through the session lines above).
    "customer.subscription.created": subscription_events.on_subscription,
    "customer.subscription.updated": subscription_events.on_subscription,
    "customer.subscription.deleted": subscription_events.on_subscription,
    "customer.subscription.trial_will_end": subscription_events.on_subscription,
    "invoice.paid": subscription_events.on_invoice,
    "invoice.payment_failed": subscription_events.on_invoice,
    "invoice.payment_action_required": subscription_events.on_invoice,
    "invoice.upcoming": subscription_events.on_invoice,
}
