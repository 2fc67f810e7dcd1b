"""Stripe events about subscriptions and their invoices: each is applied by asking Stripe for the object
as it is now (`orders.subscriptions`), so duplicates and events out of order change nothing more."""

from apps.payments.orders import subscriptions


def _cause(event: dict) -> str:
    return f"{event['type']} {event['id']}"


def on_subscription(event: dict) -> str:
    """Created, updated, deleted, or its trial ends in three days."""
    subscription_id = event["data"]["object"]["id"]
    if event["type"] == "customer.subscription.trial_will_end":
        return subscriptions.subscription_trial_ending(subscription_id, cause=_cause(event))
    stored = subscriptions.subscription_refresh(subscription_id, cause=_cause(event))
    if stored is None:
        return "ignored: a subscription of another installation"
    return f"subscription {subscription_id} {stored.stripe_data['status']}"


def on_invoice(event: dict) -> str:
    """Paid, failed, waiting for the customer (3D Secure), or announced ahead of a renewal."""
    invoice = event["data"]["object"]
    subscription_id = subscriptions.invoice_subscription_id(invoice)
    if not subscription_id:
        return "ignored: not the invoice of a subscription"
    if event["type"] == "invoice.upcoming":  # a preview, with no id: the subscription is brought up to date
        stored = subscriptions.subscription_refresh(subscription_id, cause=_cause(event))
        return (
            f"subscription {subscription_id} renews on {invoice.get('next_payment_attempt')}"
            if stored
            else ("ignored: a subscription of another installation")
        )
    return subscriptions.invoice_apply(
        invoice["id"], event["type"], subscription_id=subscription_id, cause=_cause(event)
    )
