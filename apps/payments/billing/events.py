"""Stripe events about subscriptions and their invoices, and the Checkout Sessions that sell plans: each is
applied by asking Stripe for the object as it is now (`store`), so duplicates and events out of order change
nothing more."""

from apps.payments.billing.checkout import subscription_session_apply
from apps.payments.billing.outcomes import BillingOutcome
from apps.payments.billing.store import (
    invoice_apply,
    invoice_subscription_id,
    subscription_refresh,
    subscription_trial_ending,
)
from config.outcomes import Outcome


def _cause(event: dict) -> str:
    return f"{event['type']} {event['id']}"


def on_session(event: dict) -> Outcome:
    """A subscription-mode Checkout Session completed or expired."""
    return subscription_session_apply(event["data"]["object"], cause=_cause(event))


def on_subscription(event: dict) -> Outcome:
    """Created, updated, deleted, or its trial ends in three days."""
    subscription_id = event["data"]["object"]["id"]
    if event["type"] == "customer.subscription.trial_will_end":
        return subscription_trial_ending(subscription_id, cause=_cause(event))
    stored = subscription_refresh(subscription_id, cause=_cause(event))
    if stored is None:
        return BillingOutcome.OTHER_INSTALLATION.of()
    return BillingOutcome.SUBSCRIPTION_STORED.of(subscription=subscription_id, status=stored.stripe_data["status"])


def on_invoice(event: dict) -> Outcome:
    """Paid, failed, waiting for the customer (3D Secure), or announced ahead of a renewal."""
    invoice = event["data"]["object"]
    subscription_id = invoice_subscription_id(invoice)
    if not subscription_id:
        return BillingOutcome.NOT_A_SUBSCRIPTION_INVOICE.of()
    if event["type"] == "invoice.upcoming":  # a preview, with no id: the subscription is brought up to date
        stored = subscription_refresh(subscription_id, cause=_cause(event))
        if stored is None:
            return BillingOutcome.OTHER_INSTALLATION.of()
        return BillingOutcome.RENEWS.of(
            subscription=subscription_id, next_payment_attempt=invoice.get("next_payment_attempt")
        )
    return invoice_apply(invoice["id"], event["type"], subscription_id=subscription_id, cause=_cause(event))
