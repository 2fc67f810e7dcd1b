"""Selling plans: the Checkout Session that starts a subscription for a cart of plans, and what its session's
end (completed, expired) does to it."""

from datetime import timedelta

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import Price
from apps.payments.billing.models import SubscriptionCheckout, SubscriptionCheckoutStatus
from apps.payments.billing.outcomes import BillingOutcome
from apps.payments.billing.selectors import live_subscription_of, subscriptions_of
from apps.payments.billing.store import subscription_refresh
from apps.payments.gateway.client import gateway
from apps.payments.gateway.errors import StripeRefused, StripeUnavailable
from apps.payments.gateway.installation import NAMESPACE_KEY, installation_namespace
from apps.payments.mirror.models import MirrorKind
from apps.payments.mirror.refs import ensure_in_stripe, ensure_price_in_stripe, stripe_id_of
from apps.payments.orders.checkout import cart_fingerprint
from apps.payments.orders.errors import CheckoutUnavailable, SubscriptionActionRefused
from apps.payments.orders.lifecycle import CartLine
from apps.payments.orders.locks import user_lock
from apps.users.models import User
from config.outcomes import Outcome


def subscription_checkout_for_cart(
    *, user: User, lines: list[CartLine], success_url: str, cancel_url: str
) -> SubscriptionCheckout:
    """The Checkout Session that sells these plans to the user.

    The same cart again within `CHECKOUT_REUSE_SECONDS` gets the same open session. A plan the user
    holds already is refused; another open checkout of the same plan (other return URLs, the yearly
    price instead of the monthly) is expired in Stripe first, so two can never both be paid. A trial
    is given once per user and product. The user's lock is held only to decide; Stripe is asked after.
    """
    fingerprint = cart_fingerprint(lines, success_url=success_url, cancel_url=cancel_url)
    products = {line.price.product for line in lines}
    # What the session names in Stripe comes first: a cart Stripe cannot take yet leaves nothing behind.
    customer = ensure_in_stripe(MirrorKind.USER, user.pk)
    stripe_prices = [ensure_price_in_stripe(line.price) for line in lines]  # as the catalog has them now
    with transaction.atomic():
        user_lock(user.pk)  # a double click waits for its twin
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
            trials = [
                line.price.trial_days for line in lines if line.price.trial_days and not _had_plan_before(user, line)
            ]
            checkout = SubscriptionCheckout.objects.create(
                user=user,
                lines=[{"price": line.price.pk, "quantity": line.quantity} for line in lines],
                currency=lines[0].price.currency,
                trial_days=max(trials) if trials else None,
                cart_fingerprint=fingerprint,
            )
        if checkout.checkout_session_id:
            return checkout
        others = _other_open_checkouts(user, products, but=checkout)
    try:
        for other in others:
            _expire_checkout(other)
    except Exception:
        _close_without_session(checkout)  # no session opened beside one just paid
        raise
    return _session_start(checkout, stripe_prices, customer, success_url, cancel_url)


def _had_plan_before(user: User, line: CartLine) -> bool:
    """The user subscribed to this product before (in any status): no second trial."""
    stripe_id = stripe_id_of(MirrorKind.PRODUCT, line.price.product_id)
    return bool(stripe_id) and subscriptions_of(user).filter(items__price__product__id=stripe_id).exists()


def _other_open_checkouts(user: User, products: set, *, but: SubscriptionCheckout) -> list[SubscriptionCheckout]:
    """The user's other open checkouts of any of these products."""
    price_ids = set(Price.objects.filter(product__in=products).values_list("pk", flat=True))
    return [
        checkout
        for checkout in SubscriptionCheckout.objects.filter(user=user, status=SubscriptionCheckoutStatus.OPEN)
        if checkout.pk != but.pk and price_ids & {line["price"] for line in checkout.lines}
    ]


def _expire_checkout(checkout: SubscriptionCheckout) -> None:
    """Close an open checkout in Stripe, unless it was just paid (then the new one is refused)."""
    if checkout.checkout_session_id:
        _expire_session(checkout.checkout_session_id)
    SubscriptionCheckout.objects.filter(pk=checkout.pk, status=SubscriptionCheckoutStatus.OPEN).update(
        status=SubscriptionCheckoutStatus.EXPIRED
    )


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


def _session_start(
    checkout: SubscriptionCheckout, stripe_prices: list[str], customer: str, success_url: str, cancel_url: str
) -> SubscriptionCheckout:
    reference = {"subscription_checkout": str(checkout.pk), NAMESPACE_KEY: installation_namespace()}
    subscription_data: dict = {"metadata": reference}
    if checkout.trial_days:
        subscription_data["trial_period_days"] = checkout.trial_days
    params = {
        "mode": "subscription",
        # Stripe's prices as the catalog has them now: renewals charge them.
        "line_items": [
            {"price": price, "quantity": line["quantity"]}
            for price, line in zip(stripe_prices, checkout.lines, strict=True)
        ],
        "customer": customer,
        "success_url": success_url,
        "cancel_url": cancel_url,
        "metadata": reference,
        "subscription_data": subscription_data,
    }
    gw = gateway()
    try:
        session = gw.call(
            lambda options: gw.v1.checkout.sessions.create(params=params, options=options),
            idempotency_key=f"subscription-checkout:{checkout.pk}",
        )
    except StripeUnavailable as error:
        _close_without_session(checkout)
        raise CheckoutUnavailable(str(error), error.retry_after) from error
    except stripe.StripeError as error:
        _close_without_session(checkout)
        raise StripeRefused(error) from error
    except Exception:  # no open row without a session
        _close_without_session(checkout)
        raise
    SubscriptionCheckout.objects.filter(pk=checkout.pk).update(checkout_session_id=session.id, checkout_url=session.url)
    checkout.refresh_from_db()
    return checkout


def _close_without_session(checkout: SubscriptionCheckout) -> None:
    """A session that could not be opened leaves nothing open (unless a twin opened it meanwhile)."""
    SubscriptionCheckout.objects.filter(pk=checkout.pk, checkout_session_id=None).update(
        status=SubscriptionCheckoutStatus.EXPIRED
    )


def subscription_session_apply(session: dict, cause: str) -> Outcome:
    """A subscription-mode Checkout Session completed or expired: its checkout row follows, and the
    subscription it started is stored at once (its own events may come later)."""
    checkout = SubscriptionCheckout.objects.filter(checkout_session_id=session["id"]).first()
    if session.get("status") == "expired":
        if checkout is None:
            return BillingOutcome.NO_CHECKOUT_FOR_SESSION.of()
        SubscriptionCheckout.objects.filter(pk=checkout.pk, status=SubscriptionCheckoutStatus.OPEN).update(
            status=SubscriptionCheckoutStatus.EXPIRED
        )
        return BillingOutcome.CHECKOUT_EXPIRED.of(checkout=checkout.pk)
    if session.get("status") != "complete" or not session.get("subscription"):
        return BillingOutcome.SESSION_STILL_OPEN.of()
    if checkout is not None:
        SubscriptionCheckout.objects.filter(pk=checkout.pk).update(
            status=SubscriptionCheckoutStatus.COMPLETE, subscription_id=session["subscription"]
        )
    stored = subscription_refresh(session["subscription"], cause=cause)
    if stored is None:
        return BillingOutcome.STARTED_ELSEWHERE.of(subscription=session["subscription"])
    return BillingOutcome.SUBSCRIPTION_STORED.of(
        subscription=session["subscription"], status=stored.stripe_data["status"]
    )
