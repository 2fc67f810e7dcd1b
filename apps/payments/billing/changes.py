"""What a user (or staff) changes on a subscription: cancel, resume, another plan. Each change goes to
Stripe, and its answer is stored at once."""

import uuid

import stripe
from djstripe import models as djstripe_models

from apps.payments.billing.locks import stored_version, storing_answer
from apps.payments.billing.models import ENDED_STATUSES
from apps.payments.billing.store import as_stripe_json, invoice_store, subscription_store
from apps.payments.gateway.client import gateway
from apps.payments.gateway.errors import StripeRefused
from apps.payments.mirror.refs import ensure_price_in_stripe
from apps.payments.orders.errors import SubscriptionActionRefused
from config.task_base import queue_task_on_commit

# A fresh read of a subscription by a worker, queued when a request's own answer may not be the newest state.
SUBSCRIPTION_REFRESH_TASK = "apps.payments.billing.tasks.subscription_refresh_task"


def _subscription_update(
    subscription: djstripe_models.Subscription, params: dict, what: str
) -> djstripe_models.Subscription:
    """Change the subscription in Stripe and store its answer. The Stripe key is new for each request (a
    retry of this request replays it; a later cancel after a resume is a new change, never a replay of the
    first); setting a state is safe to repeat, and the client's `Idempotency-Key` covers its own retries."""
    gw = gateway()
    asked_at = stored_version(subscription.id)
    fresh = gw.call_for_client(
        lambda options: gw.v1.subscriptions.update(subscription.id, params=params, options=options),
        idempotency_key=f"subscription:{subscription.id}:{what}:{uuid.uuid4()}",
    )
    invoice = None
    latest = fresh.get("latest_invoice")
    if latest and not djstripe_models.Invoice.objects.filter(id=latest).exists():
        # A plan change invoiced now: answer with it.
        invoice = gw.call_for_client(lambda options: gw.v1.invoices.retrieve(latest, options=options))
    return _keep_answer(subscription, asked_at, fresh, invoice, cause=what)


def _keep_answer(subscription: djstripe_models.Subscription, asked_at: int, fresh, invoice, *, cause: str):
    """Store Stripe's answer to a change made here (asked without any lock held): a read after our own write,
    so the user's next request is judged on it. When a worker is storing the subscription right now, or stored
    it since the change was asked, a worker reads it again after: the newest state is what stays."""
    stored = None
    with storing_answer(subscription.id, asked_at=asked_at) as (store, overtaken):
        if store:
            stored = subscription_store(fresh, cause=cause)
            if invoice is not None:
                invoice_store(invoice, cause=cause)
    if overtaken:
        queue_task_on_commit(SUBSCRIPTION_REFRESH_TASK, subscription.id)
    if stored is not None:
        return stored
    # Not stored here (yet): the answer is Stripe's, as the worker will store it, with its invoice.
    answered = djstripe_models.Subscription(
        djstripe_id=subscription.djstripe_id,
        id=subscription.id,
        customer=subscription.customer,
        stripe_data=as_stripe_json(fresh),
        created=subscription.created,
    )
    answered.invoice_as_answered = as_stripe_json(invoice) if invoice is not None else None
    return answered


def _held(subscription: djstripe_models.Subscription) -> dict:
    """What Stripe holds now. What is stored may trail a change whose answer a worker has not stored yet: a
    request refused for a state it is in asks Stripe first."""
    gw = gateway()
    return as_stripe_json(
        gw.call_for_client(lambda options: gw.v1.subscriptions.retrieve(subscription.id, options=options))
    )


def _refuse_if_ended(subscription: djstripe_models.Subscription) -> None:
    if subscription.stripe_data["status"] in ENDED_STATUSES:
        raise SubscriptionActionRefused(f"This subscription is {subscription.stripe_data['status']}.")


def subscription_cancel(*, subscription: djstripe_models.Subscription, at_once: bool):
    """Cancel at the end of the paid period (the user keeps access until then), or at once (staff)."""
    _refuse_if_ended(subscription)
    if not at_once:
        return _subscription_update(subscription, {"cancel_at_period_end": True}, "cancel")
    gw = gateway()
    asked_at = stored_version(subscription.id)
    try:
        fresh = gw.call(lambda options: gw.v1.subscriptions.cancel(subscription.id, options=options))
    except stripe.InvalidRequestError as error:
        # Canceled meanwhile (or by our own request whose answer was lost): what Stripe holds says.
        fresh = gw.call_for_client(lambda options: gw.v1.subscriptions.retrieve(subscription.id, options=options))
        if fresh["status"] not in ENDED_STATUSES:
            raise StripeRefused(error) from error
        return _keep_answer(subscription, asked_at, fresh, None, cause="cancel at once found it ended")
    except stripe.StripeError as error:  # refused for good (a key without the right, ...): an answer, not a crash
        raise StripeRefused(error) from error
    return _keep_answer(subscription, asked_at, fresh, None, cause="canceled at once")


def subscription_resume(*, subscription: djstripe_models.Subscription):
    """Take back a cancellation set for the end of the period."""
    _refuse_if_ended(subscription)
    if not subscription.stripe_data.get("cancel_at_period_end") and not _held(subscription).get("cancel_at_period_end"):
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
        held = _held(subscription)["items"]["data"]
        if len(held) != 1 or held[0]["price"]["id"] == stripe_price:
            raise SubscriptionActionRefused("The subscription is on this plan already.")
        item = held[0]
    if proration is None:
        dearer = price.unit_amount > item["price"]["unit_amount"]
        proration = "always_invoice" if dearer else "create_prorations"
    params = {"items": [{"id": item["id"], "price": stripe_price}], "proration_behavior": proration}
    return _subscription_update(subscription, params, f"plan:{stripe_price}")
