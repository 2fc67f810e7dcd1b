"""What a user (or staff) changes on a subscription: cancel, resume, another plan. Each change goes to
Stripe, and its answer is stored at once."""

import uuid

import stripe
from djstripe import models as djstripe_models

from apps.payments.billing.locks import storing_state
from apps.payments.billing.models import ENDED_STATUSES
from apps.payments.billing.store import invoice_store, subscription_store
from apps.payments.gateway.client import gateway
from apps.payments.gateway.errors import StripeRefused
from apps.payments.mirror.refs import ensure_price_in_stripe
from apps.payments.orders.errors import SubscriptionActionRefused


def _subscription_update(
    subscription: djstripe_models.Subscription, params: dict, what: str
) -> djstripe_models.Subscription:
    """Change the subscription in Stripe and store its answer. The Stripe key is new for each request (a
    retry of this request replays it; a later cancel after a resume is a new change, never a replay of the
    first); setting a state is safe to repeat, and the client's `Idempotency-Key` covers its own retries."""
    gw = gateway()
    fresh = gw.call_for_client(
        lambda options: gw.v1.subscriptions.update(subscription.id, params=params, options=options),
        idempotency_key=f"subscription:{subscription.id}:{what}:{uuid.uuid4()}",
    )
    invoice = None
    latest = fresh.get("latest_invoice")
    if latest and not djstripe_models.Invoice.objects.filter(id=latest).exists():
        # A plan change invoiced now: answer with it.
        invoice = gw.call_for_client(lambda options: gw.v1.invoices.retrieve(latest, options=options))
    return _keep_answer(subscription, fresh, invoice, cause=what)


def _keep_answer(subscription: djstripe_models.Subscription, fresh, invoice, *, cause: str):
    """Store Stripe's answer to a change made here (asked without any lock held): a read after our own write,
    so the user's next request is judged on it. A drain that read earlier reads again (`locks`)."""
    with storing_state(subscription.id):
        stored = subscription_store(fresh, cause=cause)
        if invoice is not None:
            invoice_store(invoice, cause=cause)
    return stored or subscription


def _refuse_if_ended(subscription: djstripe_models.Subscription) -> None:
    if subscription.stripe_data["status"] in ENDED_STATUSES:
        raise SubscriptionActionRefused(f"This subscription is {subscription.stripe_data['status']}.")


def subscription_cancel(*, subscription: djstripe_models.Subscription, at_once: bool):
    """Cancel at the end of the paid period (the user keeps access until then), or at once (staff)."""
    _refuse_if_ended(subscription)
    if not at_once:
        return _subscription_update(subscription, {"cancel_at_period_end": True}, "cancel")
    gw = gateway()
    try:
        fresh = gw.call(lambda options: gw.v1.subscriptions.cancel(subscription.id, options=options))
    except stripe.InvalidRequestError as error:
        # Canceled meanwhile (or by our own request whose answer was lost): what Stripe holds says.
        fresh = gw.call_for_client(lambda options: gw.v1.subscriptions.retrieve(subscription.id, options=options))
        if fresh["status"] not in ENDED_STATUSES:
            raise StripeRefused(error) from error
        return _keep_answer(subscription, fresh, None, cause="cancel at once found it ended")
    except stripe.StripeError as error:  # refused for good (a key without the right, ...): an answer, not a crash
        raise StripeRefused(error) from error
    return _keep_answer(subscription, fresh, None, cause="canceled at once")


def subscription_resume(*, subscription: djstripe_models.Subscription):
    """Take back a cancellation set for the end of the period."""
    _refuse_if_ended(subscription)
    if not subscription.stripe_data.get("cancel_at_period_end"):
        raise SubscriptionActionRefused("This subscription is not set to cancel; there is nothing to resume.")
    return _subscription_update(subscription, {"cancel_at_period_end": False}, "resume")


def subscription_change_plan(*, subscription: djstripe_models.Subscription, price, proration: str | None):
    """Move the subscription to another recurring price of the same billing period; Stripe prorates the
    rest of the period. Unless staff chose otherwise, an upgrade is invoiced and charged now (no one uses
    the dearer plan on credit) and a downgrade is credited on the next invoice."""
    _refuse_if_ended(subscription)
    items = subscription.stripe_data["items"]["data"]
    if len(items) != 1:
        raise SubscriptionActionRefused("Only a subscription of one plan can change its plan here.")
    item = items[0]
    recurring = item["price"]["recurring"]
    if (price.recurring_interval, price.recurring_interval_count) != (
        recurring["interval"],
        recurring["interval_count"],
    ):
        raise SubscriptionActionRefused("The new plan must bill as often as the current one.")
    if price.currency != subscription.stripe_data["currency"]:
        raise SubscriptionActionRefused("The new plan must be in the subscription's currency.")
    stripe_price = ensure_price_in_stripe(price)
    if stripe_price == item["price"]["id"]:
        raise SubscriptionActionRefused("The subscription is on this plan already.")
    if proration is None:
        dearer = price.unit_amount > item["price"]["unit_amount"]
        proration = "always_invoice" if dearer else "create_prorations"
    params = {"items": [{"id": item["id"], "price": stripe_price}], "proration_behavior": proration}
    return _subscription_update(subscription, params, f"plan:{stripe_price}")
