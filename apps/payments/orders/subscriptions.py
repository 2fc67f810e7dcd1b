"""Subscriptions: plans sold through Checkout, kept in dj-stripe's tables from what Stripe says, and
changed, canceled or resumed for their user.

A subscription is dj-stripe's `Subscription` (with its `SubscriptionItem`s and `Invoice`s), synced
from Stripe: an event is applied by fetching the object as Stripe holds it now, so a late or
repeated event can never put back an older state. It belongs to the user whose mirrored customer
it bills; nothing a payer types links it to anyone.

Each step a customer hears about (started, renewed, a payment failed, the trial ends, canceled) is
a signal that mail turns into one message, keyed by what caused it.
"""

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta

import stripe
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from djstripe import models as djstripe_models

from apps.catalog.models import Price, Product
from apps.payments import signals
from apps.payments.gateway.client import gateway
from apps.payments.gateway.errors import StripeRefused, StripeUnavailable
from apps.payments.mirror.installation import NAMESPACE_KEY, installation_namespace
from apps.payments.models import MirrorKind, MirrorRecord, SubscriptionCheckout, SubscriptionCheckoutStatus
from apps.payments.orders.checkout import cart_fingerprint, current_stripe_price, stripe_id_of
from apps.payments.orders.errors import CheckoutUnavailable, SubscriptionActionRefused
from apps.payments.orders.lifecycle import CartLine
from apps.users.models import User

log = logging.getLogger("apps.payments.orders")

# What a subscription in each status gives its user. `past_due` keeps access while Stripe retries the card.
ACCESS_STATUSES = ("trialing", "active", "past_due")
ENDED_STATUSES = ("canceled", "incomplete_expired")
# An invoice in one of these is never reopened by Stripe.
FINAL_INVOICE_STATUSES = ("paid", "void")
# How Stripe settles a plan change within a period (`proration_behavior`).
PRORATIONS = ("create_prorations", "always_invoice", "none")


# --- who holds what ----------------------------------------------------------------------------------


def subscriptions_of(user: User):
    """The user's subscriptions: those billing their mirrored customer."""
    return djstripe_models.Subscription.objects.filter(customer__subscriber=user)


def stripe_product_id(product_id: int) -> str | None:
    """The Stripe product that mirrors a catalog product."""
    found = MirrorRecord.objects.filter(kind=MirrorKind.PRODUCT, object_id=product_id).exclude(stripe_id="")
    return found.values_list("stripe_id", flat=True).first()


def live_subscription_of(user: User, product, statuses=ACCESS_STATUSES) -> djstripe_models.Subscription | None:
    """The user's subscription to a plan of this product that is in one of `statuses`, if any."""
    stripe_id = stripe_product_id(product.pk)
    if not stripe_id or not getattr(user, "pk", None):
        return None
    return (
        subscriptions_of(user)
        .filter(stripe_data__status__in=list(statuses), items__price__product__id=stripe_id)
        .order_by("-created")
        .first()
    )


@dataclass(frozen=True)
class CatalogRefs:
    """Which catalog rows Stripe's ids stand for: `price`/`product` by Stripe id, product names by our id."""

    prices: dict[str, int]
    products: dict[str, int]
    product_names: dict[int, str]


def catalog_refs(stripe_ids: set[str]) -> CatalogRefs:
    rows = MirrorRecord.objects.filter(stripe_id__in=stripe_ids, kind__in=(MirrorKind.PRICE, MirrorKind.PRODUCT))
    prices, products = {}, {}
    for kind, stripe_id, object_id in rows.values_list("kind", "stripe_id", "object_id"):
        (prices if kind == MirrorKind.PRICE else products)[stripe_id] = object_id
    names = dict(Product.objects.filter(pk__in=products.values()).values_list("pk", "name"))
    return CatalogRefs(prices=prices, products=products, product_names=names)


@dataclass(frozen=True)
class SubscriptionNews:
    """What a message about a subscription (or one of its invoices) tells its user."""

    subscription_id: str
    user: object
    plan_names: list[str]
    status: str
    currency: str
    amount: int
    current_period_end: int | None
    trial_end: int | None
    invoice_id: str = ""
    invoice_number: str = ""
    invoice_url: str = ""
    # Where the customer saves another card (the portal's login page), for a payment that failed.
    portal_url: str = ""
    # The bank asks the customer to confirm the payment (3D Secure): nothing is wrong with the card.
    action_required: bool = False


def subscription_news(*, subscription_id: str, invoice_id: str = "") -> SubscriptionNews | None:
    """A subscription's (and an invoice's) state for mail; None unless one of our users holds it."""
    found = djstripe_models.Subscription.objects.select_related("customer__subscriber")
    sub = found.filter(id=subscription_id).first()
    if sub is None or sub.customer.subscriber is None:
        return None
    data = sub.stripe_data
    items = data["items"]["data"]
    refs = catalog_refs({item["price"]["product"] for item in items})
    invoice = djstripe_models.Invoice.objects.filter(id=invoice_id).first() if invoice_id else None
    invoice_data = invoice.stripe_data if invoice else {}
    return SubscriptionNews(
        subscription_id=sub.id,
        user=sub.customer.subscriber,
        plan_names=[
            refs.product_names.get(refs.products.get(item["price"]["product"]), item["price"]["product"])
            for item in items
        ],
        status=data["status"],
        currency=data["currency"],
        amount=invoice_data.get("amount_due") or sum(item["price"]["unit_amount"] * item["quantity"] for item in items),
        current_period_end=items[0].get("current_period_end") if items else None,
        trial_end=data.get("trial_end"),
        invoice_id=invoice_id,
        invoice_number=invoice_data.get("number") or "",
        invoice_url=invoice_data.get("hosted_invoice_url") or "",
    )


# --- selling ---------------------------------------------------------------------------------------


def subscription_checkout_for_cart(
    *, user: User, lines: list[CartLine], success_url: str, cancel_url: str
) -> SubscriptionCheckout:
    """The Checkout Session that sells these plans to the user.

    The same cart again within `CHECKOUT_REUSE_SECONDS` gets the same open session. A plan the user
    holds already is refused; another open checkout of the same plan (other return URLs, the yearly
    price instead of the monthly) is expired in Stripe first, so two can never both be paid. A trial
    is given once per user and product.
    """
    fingerprint = cart_fingerprint(lines, success_url=success_url, cancel_url=cancel_url)
    products = {line.price.product for line in lines}
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # a double click waits for its twin
        for product in products:
            held = live_subscription_of(user, product)
            if held is not None:
                raise SubscriptionActionRefused(
                    f"You already subscribe to {product.name} ({held.id}); change its plan instead."
                )
        checkout = SubscriptionCheckout.objects.filter(
            user=user,
            cart_fingerprint=fingerprint,
            status=SubscriptionCheckoutStatus.OPEN,
            created_at__gte=timezone.now() - timedelta(seconds=settings.CHECKOUT_REUSE_SECONDS),
        ).first()
        if checkout is None:
            _expire_open_checkouts(user, products)
            trials = [line.price.trial_days for line in lines if line.price.trial_days and not _had(user, line)]
            checkout = SubscriptionCheckout.objects.create(
                user=user,
                lines=[{"price": line.price.pk, "quantity": line.quantity} for line in lines],
                currency=lines[0].price.currency,
                trial_days=max(trials) if trials else None,
                cart_fingerprint=fingerprint,
            )
    if checkout.checkout_session_id:
        return checkout
    return _start(checkout, lines, success_url, cancel_url)


def _had(user: User, line: CartLine) -> bool:
    """The user subscribed to this product before (in any status): no second trial."""
    stripe_id = stripe_product_id(line.price.product_id)
    return bool(stripe_id) and subscriptions_of(user).filter(items__price__product__id=stripe_id).exists()


def _expire_open_checkouts(user: User, products: set) -> None:
    """Close the user's other open checkouts of these products in Stripe, unless one was just paid."""
    price_ids = set(Price.objects.filter(product__in=products).values_list("pk", flat=True))
    for checkout in SubscriptionCheckout.objects.filter(user=user, status=SubscriptionCheckoutStatus.OPEN):
        if not price_ids & {line["price"] for line in checkout.lines}:
            continue
        if checkout.checkout_session_id:
            _expire_session(checkout.checkout_session_id)
        SubscriptionCheckout.objects.filter(pk=checkout.pk).update(status=SubscriptionCheckoutStatus.EXPIRED)


def _expire_session(session_id: str) -> None:
    gw = gateway()
    try:
        gw.call(lambda options: gw.v1.checkout.sessions.expire(session_id, options=options))
    except stripe.InvalidRequestError as error:  # not open any more: expired, or paid a moment ago
        session = gw.call_for_client(lambda options: gw.v1.checkout.sessions.retrieve(session_id, options=options))
        if session.status == "complete":
            raise SubscriptionActionRefused(
                "A checkout of this plan was just paid; its subscription is on its way."
            ) from error


def _start(checkout: SubscriptionCheckout, lines: list[CartLine], success_url: str, cancel_url: str):
    reference = {"subscription_checkout": str(checkout.pk), NAMESPACE_KEY: installation_namespace()}
    subscription_data: dict = {"metadata": reference}
    if checkout.trial_days:
        subscription_data["trial_period_days"] = checkout.trial_days
    try:
        params = {
            "mode": "subscription",
            # Stripe's prices as the catalog has them now (409 while the mirror is behind): renewals charge them.
            "line_items": [{"price": current_stripe_price(line.price), "quantity": line.quantity} for line in lines],
            "customer": stripe_id_of(MirrorKind.USER, checkout.user_id),
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": reference,
            "subscription_data": subscription_data,
        }
        gw = gateway()
        session = gw.call(
            lambda options: gw.v1.checkout.sessions.create(params=params, options=options),
            idempotency_key=f"subscription-checkout:{checkout.pk}",
        )
    except (StripeUnavailable, CheckoutUnavailable) as error:
        _close(checkout)
        raise CheckoutUnavailable(str(error)) from error
    except stripe.StripeError as error:
        _close(checkout)
        raise StripeRefused(error) from error
    except Exception:  # a price Stripe does not hold yet (409), ...: no open row without a session
        _close(checkout)
        raise
    SubscriptionCheckout.objects.filter(pk=checkout.pk).update(checkout_session_id=session.id, checkout_url=session.url)
    checkout.refresh_from_db()
    return checkout


def _close(checkout: SubscriptionCheckout) -> None:
    """A session that could not be opened leaves nothing open (unless a twin opened it meanwhile)."""
    SubscriptionCheckout.objects.filter(pk=checkout.pk, checkout_session_id=None).update(
        status=SubscriptionCheckoutStatus.EXPIRED
    )


def subscription_session_apply(session: dict, cause: str) -> str:
    """A subscription-mode Checkout Session completed or expired: its checkout row follows, and the
    subscription it started is stored at once (its own events may come later)."""
    checkout = SubscriptionCheckout.objects.filter(checkout_session_id=session["id"]).first()
    if session.get("status") == "expired":
        if checkout is None:
            return "ignored: no subscription checkout of ours for this session"
        SubscriptionCheckout.objects.filter(pk=checkout.pk, status=SubscriptionCheckoutStatus.OPEN).update(
            status=SubscriptionCheckoutStatus.EXPIRED
        )
        return f"subscription checkout {checkout.pk} expired"
    if session.get("status") != "complete" or not session.get("subscription"):
        return "unchanged (session still open)"
    if checkout is not None:
        SubscriptionCheckout.objects.filter(pk=checkout.pk).update(
            status=SubscriptionCheckoutStatus.COMPLETE, subscription_id=session["subscription"]
        )
    stored = subscription_refresh(session["subscription"], cause=cause)
    return f"subscription {session['subscription']} {stored.stripe_data['status'] if stored else 'not ours'}"


# --- keeping dj-stripe's rows as Stripe holds them ----------------------------------------------------


def as_sent(stripe_object) -> dict:
    """The object as Stripe's JSON says it (the SDK reads `*_decimal` strings as `Decimal`, which
    dj-stripe's JSON columns cannot store)."""
    return json.loads(json.dumps(stripe_object.to_dict(), default=str))


def _foreign(obj: dict) -> bool:
    """Made by another installation sharing this Stripe account (its namespace, not ours)."""
    namespace = (obj.get("metadata") or {}).get(NAMESPACE_KEY)
    return bool(namespace) and namespace != installation_namespace()


@contextmanager
def one_at_a_time(subscription_id: str) -> Iterator[None]:
    """Asking Stripe about a subscription (or changing it) and storing the answer is done by one process at a
    time: two event drains must not store what they fetched in the other order (an older state last)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"subscription:{subscription_id}"])
        yield


def subscription_refresh(subscription_id: str, *, cause: str) -> djstripe_models.Subscription | None:
    """Fetch the subscription from Stripe and store it; tell what changed for its customer."""
    gw = gateway()
    with one_at_a_time(subscription_id):
        fresh = gw.call(lambda options: gw.v1.subscriptions.retrieve(subscription_id, options=options))
        return subscription_store(fresh, cause=cause)


def subscription_store(stripe_subscription, *, cause: str) -> djstripe_models.Subscription | None:
    """Store the subscription Stripe answered (the SDK's object: dj-stripe pages through its items).
    Call it inside `one_at_a_time`. A canceled subscription stays canceled: Stripe never revives one."""
    fresh = as_sent(stripe_subscription)
    if _foreign(fresh):
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


def subscription_trial_ending(subscription_id: str, *, cause: str) -> str:
    stored = subscription_refresh(subscription_id, cause=cause)
    if stored is None or stored.stripe_data["status"] != "trialing":
        return f"subscription {subscription_id}: no trial to end"
    if stored.stripe_data.get("cancel_at_period_end"):  # nothing will be charged: no warning that it will
        return f"subscription {subscription_id}: trial ends with the subscription"
    _announce(signals.subscription_trial_ending, subscription_id)
    return f"subscription {subscription_id}: trial ends {stored.stripe_data['trial_end']}"


def invoice_subscription_id(invoice: dict) -> str | None:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return details.get("subscription") or invoice.get("subscription")


def invoice_refresh(
    invoice_id: str, *, subscription_id: str | None, cause: str, subscription_too: bool = False
) -> tuple[djstripe_models.Invoice | None, dict, djstripe_models.Subscription | None]:
    """Fetch the invoice from Stripe and store it beside its subscription, which is fetched and stored
    first when asked (a payment moves its status) or when it is new here.

    Both are fetched and stored under the subscription's lock: a drain that fetched the invoice while it
    was open must not store it after another drain stored it paid."""
    gw = gateway()
    with one_at_a_time(subscription_id or f"invoice:{invoice_id}"):
        stripe_invoice = gw.call(lambda options: gw.v1.invoices.retrieve(invoice_id, options=options))
        fresh = as_sent(stripe_invoice)
        subscription_id = invoice_subscription_id(fresh)
        subscription = (
            djstripe_models.Subscription.objects.filter(id=subscription_id).first() if subscription_id else None
        )
        if subscription_id and (subscription_too or subscription is None):
            subscription = subscription_refresh(subscription_id, cause=cause)  # the same lock, taken again
            if subscription is None:
                return None, fresh, None
        stored = invoice_store(stripe_invoice, cause=cause)
        if stored.stripe_data.get("status") != fresh["status"]:
            fresh = stored.stripe_data  # an answer older than what is kept: act on what is kept
        if subscription is not None and stored.subscription_id != subscription.djstripe_id:
            djstripe_models.Invoice.objects.filter(pk=stored.pk).update(subscription=subscription)
    return stored, fresh, subscription


def invoice_store(stripe_invoice, *, cause: str) -> djstripe_models.Invoice:
    """Store the invoice Stripe answered. Call it inside `one_at_a_time` of its subscription. A paid or
    void invoice stays so: Stripe never reopens one, so another status is an older answer."""
    fresh = as_sent(stripe_invoice)
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


def invoice_apply(invoice_id: str, event_type: str, *, subscription_id: str, cause: str) -> str:
    """An invoice was paid or could not be: store it; a renewal paid is a receipt, a payment that still
    fails is a message with the links to save another card and to pay, or to confirm the payment when the
    bank asks for 3D Secure (once per invoice, however often Stripe retries)."""
    stored, fresh, subscription = invoice_refresh(
        invoice_id, subscription_id=subscription_id, cause=cause, subscription_too=True
    )
    if stored is None:
        return f"ignored: invoice {invoice_id} belongs to another installation"
    subscription_id = invoice_subscription_id(fresh) or subscription_id
    ended = subscription is not None and subscription.stripe_data["status"] in ENDED_STATUSES
    if event_type == "invoice.paid" and fresh["status"] == "paid":
        if fresh["billing_reason"] in ("subscription_cycle", "subscription_update") and fresh["amount_paid"] > 0:
            _announce(signals.subscription_renewed, subscription_id, invoice_id)
        return f"invoice {invoice_id} paid"
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
        waiting = "for the customer to confirm" if action_required else "unpaid"
        return f"invoice {invoice_id} {waiting} after {fresh['attempt_count']} attempt(s)"
    return f"invoice {invoice_id} {fresh['status']}"


# --- what the user (or staff) does ------------------------------------------------------------------------


def _update(subscription: djstripe_models.Subscription, params: dict, what: str) -> djstripe_models.Subscription:
    """Change the subscription in Stripe and store its answer. The Stripe key is new for each request (a
    retry of this request replays it; a later cancel after a resume is a new change, never a replay of the
    first); setting a state is safe to repeat, and the client's `Idempotency-Key` covers its own retries."""
    gw = gateway()
    with one_at_a_time(subscription.id):
        fresh = gw.call_for_client(
            lambda options: gw.v1.subscriptions.update(subscription.id, params=params, options=options),
            idempotency_key=f"subscription:{subscription.id}:{what}:{uuid.uuid4()}",
        )
        stored = subscription_store(fresh, cause=what) or subscription
    latest = fresh.get("latest_invoice")
    if latest and not djstripe_models.Invoice.objects.filter(id=latest).exists():
        # A plan change invoiced now: answer with it.
        invoice_refresh(latest, subscription_id=subscription.id, cause=what)
    return stored


def _refuse_if_ended(subscription: djstripe_models.Subscription) -> None:
    if subscription.stripe_data["status"] in ENDED_STATUSES:
        raise SubscriptionActionRefused(f"This subscription is {subscription.stripe_data['status']}.")


def subscription_cancel(*, subscription: djstripe_models.Subscription, at_once: bool):
    """Cancel at the end of the paid period (the user keeps access until then), or at once (staff)."""
    _refuse_if_ended(subscription)
    if not at_once:
        return _update(subscription, {"cancel_at_period_end": True}, "cancel")
    gw = gateway()
    try:
        with one_at_a_time(subscription.id):
            fresh = gw.call(lambda options: gw.v1.subscriptions.cancel(subscription.id, options=options))
            return subscription_store(fresh, cause="canceled at once") or subscription
    except stripe.InvalidRequestError as error:
        # Canceled meanwhile (or by our own request whose answer was lost): what Stripe holds says.
        stored = subscription_refresh(subscription.id, cause="cancel at once found it ended")
        if stored is not None and stored.stripe_data["status"] in ENDED_STATUSES:
            return stored
        raise StripeRefused(error) from error
    except stripe.StripeError as error:  # refused for good (a key without the right, ...): an answer, not a crash
        raise StripeRefused(error) from error


def subscription_resume(*, subscription: djstripe_models.Subscription):
    """Take back a cancellation set for the end of the period."""
    _refuse_if_ended(subscription)
    if not subscription.stripe_data.get("cancel_at_period_end"):
        raise SubscriptionActionRefused("This subscription is not set to cancel; there is nothing to resume.")
    return _update(subscription, {"cancel_at_period_end": False}, "resume")


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
    stripe_price = current_stripe_price(price)
    if stripe_price == item["price"]["id"]:
        raise SubscriptionActionRefused("The subscription is on this plan already.")
    if proration is None:
        dearer = price.unit_amount > item["price"]["unit_amount"]
        proration = "always_invoice" if dearer else "create_prorations"
    params = {"items": [{"id": item["id"], "price": stripe_price}], "proration_behavior": proration}
    return _update(subscription, params, f"plan:{stripe_price}")


def billing_portal_login_url() -> str:
    """The link to the portal's login page, where a customer reached by mail saves another card ("" unless
    the login page is turned on in Stripe's portal settings). A portal session cannot be mailed: it is
    short-lived and opens without asking who is there."""
    gw = gateway()
    try:
        found = gw.call(
            lambda options: gw.v1.billing_portal.configurations.list(params={"is_default": True}, options=options)
        )
    except stripe.StripeError as error:  # refused for good (a key without portal rights): mail without it
        log.warning("portal login page unknown error=%s", error)
        return ""
    for configuration in found.data:
        if configuration.login_page.enabled and configuration.login_page.url:
            return configuration.login_page.url
    return ""


def billing_portal_url(*, user: User, return_url: str) -> str:
    """A Stripe Billing Portal session for the user's customer: their plans, invoices and card."""
    try:
        customer = stripe_id_of(MirrorKind.USER, user.pk)
    except StripeUnavailable as error:
        raise CheckoutUnavailable(str(error)) from error
    gw = gateway()
    session = gw.call_for_client(
        lambda options: gw.v1.billing_portal.sessions.create(
            params={"customer": customer, "return_url": return_url}, options=options
        )
    )
    return session.url
