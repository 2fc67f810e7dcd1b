"""dj-stripe's rows of subscriptions and invoices, kept as Stripe holds them, and what their changes tell the
customer.

An object is stored from what Stripe answered (a fetch, or our own change): a late or repeated event can
never put back an older state, since each is applied by fetching the object as Stripe holds it now, and a
read is stored only if no other store overtook it (`locks.storing_state`). A subscription belongs to the
user whose mirrored customer it bills; nothing a payer types links it to anyone.

Each step a customer hears about (started, renewed, a payment failed, the trial ends, canceled) is a signal
that mail turns into one message, keyed by what caused it.
"""

import json
import logging
from dataclasses import replace

from django.db import connection
from djstripe import models as djstripe_models

from apps.payments import signals
from apps.payments.billing.locks import stored_version, storing_state
from apps.payments.billing.models import ACCESS_STATUSES, ENDED_STATUSES, FINAL_INVOICE_STATUSES
from apps.payments.billing.outcomes import BillingOutcome
from apps.payments.billing.portal import billing_portal_login_url
from apps.payments.billing.selectors import subscription_news
from apps.payments.gateway import reads
from apps.payments.gateway.client import gateway
from apps.payments.gateway.installation import of_another_installation
from apps.payments.orders.errors import EventNotReady
from config.outcomes import Outcome

log = logging.getLogger("apps.payments.billing")

# A read that another store overtook is read again, this many times at most (then the event is tried later).
MAX_READS = 5


def as_stripe_json(stripe_object) -> dict:
    """The object as Stripe's JSON says it (the SDK reads `*_decimal` strings as `Decimal`, which
    dj-stripe's JSON columns cannot store)."""
    return json.loads(json.dumps(stripe_object.to_dict(), default=str))


def subscription_refresh(subscription_id: str, *, cause: str) -> djstripe_models.Subscription | None:
    """Fetch the subscription from Stripe and store it; tell what changed for its customer. A read that another
    store overtook is read again: what is stored last is never older than what was stored before."""
    gw = gateway()
    in_transaction = connection.in_atomic_block  # an event's handler: its transaction keeps what it locks
    for _ in range(MAX_READS):
        seen = _noted_version(subscription_id)
        fresh = gw.call(lambda options: gw.v1.subscriptions.retrieve(subscription_id, options=options))
        with storing_state(subscription_id, read_since=seen) as current:
            if current:
                return subscription_store(fresh, cause=cause)
        _not_again_in_this_transaction(subscription_id, in_transaction)
    raise EventNotReady(f"subscription {subscription_id} was stored {MAX_READS} times while it was read")


def _noted_version(key: str) -> int:
    """The version before Stripe is read. An event's handler reads Stripe before its transaction and runs again
    with the answer (`gateway.reads`): the version it compares with is the one noted before that read."""
    return reads.remember(f"subscription-version:{key}", lambda: stored_version(key))


def _not_again_in_this_transaction(key: str, in_transaction: bool) -> None:
    """An event's handler runs in the event's transaction, which keeps the lock it just took until it commits:
    Stripe must not be read again under it. The drain reads again before a new transaction (`reads.ReadAgain`);
    any other caller's transaction is tried again later, in a transaction of its own."""
    if reads.applying_an_event():
        raise reads.ReadAgain(f"{key} was stored by another process while this event read it")
    if in_transaction:
        raise EventNotReady(f"{key} was stored by another process while this event read it")


def subscription_store(stripe_subscription, *, cause: str) -> djstripe_models.Subscription | None:
    """Store the subscription Stripe answered (the SDK's object: dj-stripe pages through its items).
    Call it inside `locks.storing_state`. A canceled subscription stays canceled: Stripe never revives one."""
    fresh = as_stripe_json(stripe_subscription)
    if of_another_installation(fresh.get("metadata")):
        return None
    known = djstripe_models.Subscription.objects.filter(id=fresh["id"]).first()
    if (
        known is not None
        and known.stripe_data.get("status") in ENDED_STATUSES
        and fresh["status"] != known.stripe_data["status"]
    ):
        log.warning(
            "subscription not revived id=%s stored=%s answer=%s",
            fresh["id"],
            known.stripe_data["status"],
            fresh["status"],
        )
        return known
    stored = djstripe_models.Subscription.sync_from_stripe_data(stripe_subscription)
    # dj-stripe keeps items it once saw; Stripe's answer lists all there are now.
    djstripe_models.SubscriptionItem.objects.filter(subscription=stored).exclude(
        id__in=[item["id"] for item in fresh["items"]["data"]]
    ).delete()
    status = fresh["status"]
    if status in ACCESS_STATUSES:
        _warn_if_held_twice(stored)
        _announce(signals.subscription_started, fresh["id"])
    elif status == "canceled":
        _announce(signals.subscription_canceled, fresh["id"])
    log.info("subscription stored id=%s status=%s cause=%s", fresh["id"], status, cause)
    return stored


def _warn_if_held_twice(subscription: djstripe_models.Subscription) -> None:
    """Two live subscriptions of one customer to one product bill twice for one thing: an operator must know."""
    products = list(subscription.items.values_list("price__product__id", flat=True))
    twins = (
        djstripe_models.Subscription.objects.filter(customer=subscription.customer)
        .exclude(pk=subscription.pk)
        .filter(stripe_data__status__in=list(ACCESS_STATUSES), items__price__product__id__in=products)
    )
    if twins.exists():
        log.error(
            "customer holds two live subscriptions to one product customer=%s subscriptions=%s",
            subscription.customer_id,
            [subscription.id, *twins.values_list("id", flat=True)],
        )


def _announce(signal, subscription_id: str | None, invoice_id: str = "", **told) -> None:
    """Tell receivers (mail) what happened to a user's subscription, with what they need to say it."""
    news = subscription_news(subscription_id=subscription_id, invoice_id=invoice_id) if subscription_id else None
    if news is not None:
        signal.send(sender=None, news=replace(news, **told))


def subscription_trial_ending(subscription_id: str, *, cause: str) -> Outcome:
    stored = subscription_refresh(subscription_id, cause=cause)
    if stored is None or stored.stripe_data["status"] != "trialing":
        return BillingOutcome.NO_TRIAL_TO_END.of(subscription=subscription_id)
    if stored.stripe_data.get("cancel_at_period_end"):  # nothing will be charged: no warning that it will
        return BillingOutcome.TRIAL_ENDS_WITH_SUBSCRIPTION.of(subscription=subscription_id)
    _announce(signals.subscription_trial_ending, subscription_id)
    return BillingOutcome.TRIAL_ENDS.of(subscription=subscription_id, trial_end=stored.stripe_data["trial_end"])


def invoice_subscription_id(invoice: dict) -> str | None:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return details.get("subscription") or invoice.get("subscription")


def invoice_refresh(
    invoice_id: str, *, subscription_id: str | None, cause: str, subscription_too: bool = False
) -> tuple[djstripe_models.Invoice | None, dict, djstripe_models.Subscription | None]:
    """Fetch the invoice from Stripe and store it beside its subscription, which is fetched and stored
    first when asked (a payment moves its status) or when it is new here.

    Both are stored together, and only if nothing of the subscription was stored since they were read: a drain
    that read the invoice while it was open never stores it after another drain stored it paid."""
    gw = gateway()
    key = subscription_id or f"invoice:{invoice_id}"
    in_transaction = connection.in_atomic_block  # an event's handler: its transaction keeps what it locks
    for _ in range(MAX_READS):
        seen = _noted_version(key)
        stripe_invoice = gw.call(lambda options: gw.v1.invoices.retrieve(invoice_id, options=options))
        fresh = as_stripe_json(stripe_invoice)
        subscription_id = invoice_subscription_id(fresh)
        subscription = (
            djstripe_models.Subscription.objects.filter(id=subscription_id).first() if subscription_id else None
        )
        stripe_subscription = None
        if subscription_id and (subscription_too or subscription is None):
            stripe_subscription = gw.call(
                lambda options, subscription_id=subscription_id: gw.v1.subscriptions.retrieve(
                    subscription_id, options=options
                )
            )
        with storing_state(key, read_since=seen) as current:
            if not current:
                _not_again_in_this_transaction(key, in_transaction)
                continue
            if stripe_subscription is not None:
                subscription = subscription_store(stripe_subscription, cause=cause)
                if subscription is None:
                    return None, fresh, None
            stored = invoice_store(stripe_invoice, cause=cause)
            if stored.stripe_data.get("status") != fresh["status"]:
                fresh = stored.stripe_data  # an answer older than what is kept: act on what is kept
            if subscription is not None and stored.subscription_id != subscription.djstripe_id:
                djstripe_models.Invoice.objects.filter(pk=stored.pk).update(subscription=subscription)
            return stored, fresh, subscription
    raise EventNotReady(f"invoice {invoice_id} was stored over {MAX_READS} times while it was read")


def invoice_store(stripe_invoice, *, cause: str) -> djstripe_models.Invoice:
    """Store the invoice Stripe answered. Call it inside `locks.storing_state` of its subscription. A paid or
    void invoice stays so: Stripe never reopens one, so another status is an older answer."""
    fresh = as_stripe_json(stripe_invoice)
    known = djstripe_models.Invoice.objects.filter(id=fresh["id"]).first()
    stored_status = known.stripe_data.get("status") if known is not None else None
    if stored_status in FINAL_INVOICE_STATUSES and fresh["status"] != stored_status:
        log.warning(
            "invoice not reopened id=%s stored=%s answer=%s cause=%s",
            fresh["id"],
            stored_status,
            fresh["status"],
            cause,
        )
        return known
    return djstripe_models.Invoice.sync_from_stripe_data(stripe_invoice)


def invoice_apply(invoice_id: str, event_type: str, *, subscription_id: str, cause: str) -> Outcome:
    """An invoice was paid or could not be: store it; a renewal paid is a receipt, a payment that still
    fails is a message with the links to save another card and to pay, or to confirm the payment when the
    bank asks for 3D Secure (once per invoice, however often Stripe retries)."""
    stored, fresh, subscription = invoice_refresh(
        invoice_id, subscription_id=subscription_id, cause=cause, subscription_too=True
    )
    if stored is None:
        return BillingOutcome.INVOICE_OF_OTHER_INSTALLATION.of(invoice=invoice_id)
    subscription_id = invoice_subscription_id(fresh) or subscription_id
    ended = subscription is not None and subscription.stripe_data["status"] in ENDED_STATUSES
    if event_type == "invoice.paid" and fresh["status"] == "paid":
        if fresh["billing_reason"] in ("subscription_cycle", "subscription_update") and fresh["amount_paid"] > 0:
            _announce(signals.subscription_renewed, subscription_id, invoice_id)
        return BillingOutcome.INVOICE_PAID.of(invoice=invoice_id)
    # Once the subscription has ended (its retries ran out), asking the customer to pay would mislead them.
    failed = event_type in ("invoice.payment_failed", "invoice.payment_action_required")
    if failed and fresh["status"] == "open" and not ended:
        action_required = event_type == "invoice.payment_action_required"
        _announce(
            signals.subscription_payment_failed,
            subscription_id,
            invoice_id,
            portal_url=billing_portal_login_url(),
            action_required=action_required,
        )
        waiting = BillingOutcome.INVOICE_AWAITS_CUSTOMER if action_required else BillingOutcome.INVOICE_UNPAID
        return waiting.of(invoice=invoice_id, attempts=fresh["attempt_count"])
    return BillingOutcome.INVOICE_STORED.of(invoice=invoice_id, status=fresh["status"])
