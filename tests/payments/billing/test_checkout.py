"""Selling plans (apps/payments/billing/checkout.py): the Checkout Session that starts a subscription for a cart of
plans (the same cart again gets the same session, a plan held already is refused, another open checkout of the
plan is closed first, a trial is given once per user and product), and what the session's end does.

Here with Stripe played by an in-memory stand-in: what the session is made with, what is refused before
asking, what a refusal, no answer or a checkout paid a moment ago leaves behind. The whole path over HTTP,
with the emulator's checkout page and its events, is covered in tests/journeys/test_subscriptions.py
(`test_a_trial_is_given_once_per_user_and_product`, `test_a_second_checkout_of_the_same_plan_closes_the_first`,
`test_the_same_plan_twice_is_refused`).
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from djstripe import models as djstripe_models

from apps.payments.billing.checkout import subscription_checkout_for_cart, subscription_session_apply
from apps.payments.billing.models import SubscriptionCheckout, SubscriptionCheckoutStatus
from apps.payments.billing.outcomes import BillingOutcome
from apps.payments.gateway.errors import StripeRefused
from apps.payments.orders.errors import CheckoutUnavailable, SubscriptionActionRefused
from apps.payments.orders.lifecycle import CartLine
from tests.payments.billing.factories import plan, stripe_account, subscribed, subscriber, subscription_json
from tests.payments.stripe_stand_in import refused, unreachable
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

URLS = {"success_url": "https://shop.example/thanks", "cancel_url": "https://shop.example/plans"}


@pytest.fixture
def ada(db):
    user = UserFactory()
    subscriber(user)
    return user


@pytest.fixture
def pro(db):
    return plan("Pro", unit_amount=1500)


@pytest.fixture
def stripe_opens_sessions(stripe_stand_in):
    """Stripe makes a session per key, as its idempotency would."""
    stripe_stand_in.always(
        "checkout.sessions.create",
        lambda call: {
            "id": f"cs_{call.idempotency_key.replace(':', '_')}",
            "object": "checkout.session",
            "mode": "subscription",
            "status": "open",
            "url": f"https://checkout.stripe.com/c/pay/{call.idempotency_key}",
        },
    )
    return stripe_stand_in


def _buy(user, *prices, **urls):
    return subscription_checkout_for_cart(
        user=user, lines=[CartLine(price=price, quantity=1) for price in prices], **{**URLS, **urls}
    )


class TestStartingACheckout:
    def test_a_subscription_session_is_opened_for_the_plans_in_stripe(self, stripe_opens_sessions, ada, pro):
        checkout = _buy(ada, pro)

        create = stripe_opens_sessions.calls_to("checkout.sessions.create")[0]
        reference = {"subscription_checkout": str(checkout.pk), "app_namespace": "testsuite"}
        assert create.params == {
            "mode": "subscription",
            "line_items": [{"price": f"price_{pro.pk}", "quantity": 1}],
            "customer": f"cus_{ada.pk}",
            **URLS,
            "metadata": reference,
            "subscription_data": {"metadata": reference},
        }
        assert create.idempotency_key == f"subscription-checkout:{checkout.pk}"
        assert (checkout.status, checkout.checkout_session_id) == (
            SubscriptionCheckoutStatus.OPEN,
            f"cs_subscription-checkout_{checkout.pk}",
        )
        assert checkout.checkout_url.startswith("https://checkout.stripe.com/")

    def test_the_same_cart_again_soon_gets_the_same_session(self, stripe_opens_sessions, ada, pro):
        first = _buy(ada, pro)
        again = _buy(ada, pro)

        assert again.pk == first.pk
        assert len(stripe_opens_sessions.calls_to("checkout.sessions.create")) == 1

    def test_the_same_cart_after_the_reuse_window_is_a_new_checkout(self, stripe_opens_sessions, ada, pro, settings):
        first = _buy(ada, pro)
        SubscriptionCheckout.objects.filter(pk=first.pk).update(
            created_at=timezone.now() - timedelta(seconds=settings.CHECKOUT_REUSE_SECONDS + 1)
        )
        stripe_opens_sessions.always("checkout.sessions.expire", {"id": first.checkout_session_id, "status": "expired"})

        again = _buy(ada, pro)

        assert again.pk != first.pk
        assert SubscriptionCheckout.objects.get(pk=first.pk).status == SubscriptionCheckoutStatus.EXPIRED

    def test_a_trial_is_given_to_a_first_subscriber_of_the_product(self, stripe_opens_sessions, ada):
        team = plan("Team", unit_amount=9900, trial_days=14)

        checkout = _buy(ada, team)

        assert checkout.trial_days == 14
        assert stripe_opens_sessions.calls[0].params["subscription_data"]["trial_period_days"] == 14

    def test_no_second_trial_for_a_product_subscribed_to_before(self, stripe_opens_sessions, ada):
        team = plan("Team", unit_amount=9900, trial_days=14)
        subscribed(ada, team, status="canceled")

        checkout = _buy(ada, team)

        assert checkout.trial_days is None
        assert "trial_period_days" not in stripe_opens_sessions.calls[0].params["subscription_data"]

    def test_a_plan_held_already_is_refused_before_stripe_is_asked(self, stripe_opens_sessions, ada, pro):
        subscribed(ada, pro, subscription_id="sub_held", status="past_due")

        with pytest.raises(SubscriptionActionRefused, match=r"already subscribe to Pro \(sub_held\)"):
            _buy(ada, pro)

        assert stripe_opens_sessions.calls == []
        assert not SubscriptionCheckout.objects.exists()


class TestAnotherOpenCheckoutOfThePlan:
    def test_it_is_closed_in_stripe_before_a_new_one_opens(self, stripe_opens_sessions, ada, pro):
        first = _buy(ada, pro)
        stripe_opens_sessions.always("checkout.sessions.expire", {"id": first.checkout_session_id, "status": "expired"})

        second = _buy(ada, pro, cancel_url="https://shop.example/elsewhere")

        assert stripe_opens_sessions.paths == [
            "checkout.sessions.create",
            "checkout.sessions.expire",
            "checkout.sessions.create",
        ]
        assert stripe_opens_sessions.calls_to("checkout.sessions.expire")[0].args == (first.checkout_session_id,)
        assert SubscriptionCheckout.objects.get(pk=first.pk).status == SubscriptionCheckoutStatus.EXPIRED
        assert second.status == SubscriptionCheckoutStatus.OPEN

    def test_one_paid_a_moment_ago_refuses_the_new_one_and_leaves_nothing_open(self, stripe_opens_sessions, ada, pro):
        first = _buy(ada, pro)
        stripe_opens_sessions.always("checkout.sessions.expire", refused("Only open sessions can be expired."))
        stripe_opens_sessions.always(
            "checkout.sessions.retrieve", {"id": first.checkout_session_id, "status": "complete"}
        )

        with pytest.raises(SubscriptionActionRefused, match="just paid"):
            _buy(ada, pro, cancel_url="https://shop.example/elsewhere")

        assert list(SubscriptionCheckout.objects.values_list("status", flat=True).order_by("pk")) == [
            SubscriptionCheckoutStatus.OPEN,
            SubscriptionCheckoutStatus.EXPIRED,
        ]
        assert len(stripe_opens_sessions.calls_to("checkout.sessions.create")) == 1


class TestStripeNotOpeningTheSession:
    def test_no_answer_is_a_503_and_leaves_no_open_checkout(self, stripe_stand_in, ada, pro):
        stripe_stand_in.always("checkout.sessions.create", unreachable())

        with pytest.raises(CheckoutUnavailable):
            _buy(ada, pro)

        assert SubscriptionCheckout.objects.get().status == SubscriptionCheckoutStatus.EXPIRED

    def test_a_refusal_is_stripes_answer_and_leaves_no_open_checkout(self, stripe_stand_in, ada, pro):
        stripe_stand_in.always("checkout.sessions.create", refused("No such price"))

        with pytest.raises(StripeRefused, match="No such price"):
            _buy(ada, pro)

        assert SubscriptionCheckout.objects.get().status == SubscriptionCheckoutStatus.EXPIRED


class TestTheSessionsEnd:
    def _open(self, ada, pro) -> SubscriptionCheckout:
        return SubscriptionCheckout.objects.create(
            user=ada, lines=[{"price": pro.pk, "quantity": 1}], currency="eur", checkout_session_id="cs_sub"
        )

    def test_an_expired_session_expires_its_checkout(self, stripe_stand_in, ada, pro):
        checkout = self._open(ada, pro)

        outcome = subscription_session_apply({"id": "cs_sub", "status": "expired"}, cause="test")

        assert outcome == BillingOutcome.CHECKOUT_EXPIRED.of(checkout=checkout.pk)
        assert SubscriptionCheckout.objects.get(pk=checkout.pk).status == SubscriptionCheckoutStatus.EXPIRED

    def test_an_expired_session_of_no_checkout_here_is_ignored(self, stripe_stand_in):
        outcome = subscription_session_apply({"id": "cs_elsewhere", "status": "expired"}, cause="test")

        assert outcome.kind is BillingOutcome.NO_CHECKOUT_FOR_SESSION

    def test_a_completed_session_completes_its_checkout_and_stores_the_subscription_at_once(
        self, stripe_stand_in, ada, pro
    ):
        checkout = self._open(ada, pro)
        stripe_account()
        stripe_stand_in.always(
            "subscriptions.retrieve", subscription_json("sub_new", customer=f"cus_{ada.pk}", prices=[pro])
        )

        outcome = subscription_session_apply(
            {"id": "cs_sub", "status": "complete", "subscription": "sub_new"}, cause="checkout.session.completed"
        )

        assert outcome == BillingOutcome.SUBSCRIPTION_STORED.of(subscription="sub_new", status="active")
        checkout.refresh_from_db()
        assert (checkout.status, checkout.subscription_id) == (SubscriptionCheckoutStatus.COMPLETE, "sub_new")
        assert djstripe_models.Subscription.objects.get(id="sub_new").customer.subscriber == ada

    def test_a_session_that_started_another_installations_subscription_stores_nothing(self, stripe_stand_in, ada, pro):
        stripe_stand_in.always(
            "subscriptions.retrieve",
            subscription_json("sub_theirs", customer=f"cus_{ada.pk}", prices=[pro], namespace="theirs"),
        )

        outcome = subscription_session_apply(
            {"id": "cs_theirs", "status": "complete", "subscription": "sub_theirs"}, cause="test"
        )

        assert outcome == BillingOutcome.STARTED_ELSEWHERE.of(subscription="sub_theirs")
        assert not djstripe_models.Subscription.objects.exists()

    @pytest.mark.parametrize("session", [{"status": "open"}, {"status": "complete", "subscription": None}])
    def test_a_session_with_no_subscription_yet_changes_nothing(self, stripe_stand_in, ada, pro, session):
        checkout = self._open(ada, pro)

        outcome = subscription_session_apply({"id": "cs_sub", **session}, cause="test")

        assert outcome.kind is BillingOutcome.SESSION_STILL_OPEN
        assert SubscriptionCheckout.objects.get(pk=checkout.pk).status == SubscriptionCheckoutStatus.OPEN
        assert stripe_stand_in.calls == []
