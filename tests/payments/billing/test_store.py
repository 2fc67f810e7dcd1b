"""Subscriptions and invoices kept as Stripe holds them (apps/payments/billing/store.py): each is fetched from
Stripe and stored through dj-stripe, never an older read over a newer one, a canceled subscription never
revived, a paid invoice never reopened; and what each change tells the customer (started, renewed, a payment
that failed or needs confirming, a trial ending, canceled), as the signals mail turns into messages.

Here with Stripe played by an in-memory stand-in (dj-stripe's own requests refused), so each answer, stale or
overtaken, is chosen by the test. The same rules over HTTP, with a Stripe test clock moving real subscriptions
through renewals, dunning and cancellation, are covered in tests/journeys/test_subscriptions.py.
"""

import logging

import pytest
from djstripe import models as djstripe_models

from apps.payments import signals
from apps.payments.billing.locks import storing_state
from apps.payments.billing.outcomes import BillingOutcome
from apps.payments.billing.store import invoice_apply, subscription_refresh, subscription_trial_ending
from apps.payments.orders.errors import EventNotReady
from tests.payments.billing.factories import (
    CREATED,
    invoice_json,
    invoiced,
    plan,
    stripe_account,
    subscribed,
    subscriber,
    subscription_json,
)
from tests.payments.stripe_stand_in import refused
from tests.signal_recorder import SignalRecorder
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

PORTAL_LOGIN = "https://billing.stripe.com/p/login/test_shop"
LOGIN_PAGE = {"enabled": True, "url": PORTAL_LOGIN}


@pytest.fixture
def ada(db):
    return UserFactory()


@pytest.fixture
def pro(db):
    return plan("Pro", unit_amount=1500)


@pytest.fixture
def stripe_holds(stripe_stand_in, ada, pro):
    """What Stripe answers for Ada's subscription `sub_1` (and invoice `in_1`), set by the test."""
    stripe_account()
    customer = subscriber(ada)

    def holds(*, invoice: dict | None = None, **subscription) -> dict:
        data = subscription_json("sub_1", customer=customer, prices=[pro], **subscription)
        stripe_stand_in.always("subscriptions.retrieve", data)
        if invoice is not None:
            stripe_stand_in.always("invoices.retrieve", invoice_json("in_1", customer=customer, **invoice))
        return data

    stripe_stand_in.always(
        "billing_portal.configurations.list",
        [
            {
                "id": "bpc_1",
                "object": "billing_portal.configuration",
                "login_page": {"enabled": True, "url": PORTAL_LOGIN},
            }
        ],
    )
    return holds


def _stored_status(subscription_id: str = "sub_1") -> str | None:
    stored = djstripe_models.Subscription.objects.filter(id=subscription_id).first()
    return stored.stripe_data["status"] if stored else None


class TestSubscriptionRefresh:
    def test_the_subscription_is_fetched_stored_and_its_start_announced(self, stripe_holds, stripe_stand_in, ada):
        stripe_holds(status="active")

        with SignalRecorder(signals.subscription_started) as started:
            stored = subscription_refresh("sub_1", cause="customer.subscription.created evt_1")

        assert (stored.id, _stored_status()) == ("sub_1", "active")
        assert [call.args for call in stripe_stand_in.calls_to("subscriptions.retrieve")] == [("sub_1",)]
        assert [(news["news"].user, news["news"].plan_names) for news in started.calls] == [(ada, ["Pro"])]

    def test_a_cancellation_is_stored_and_announced(self, stripe_holds, ada, pro):
        subscribed(ada, pro)
        stripe_holds(status="canceled", ended_at=CREATED + 60)

        with SignalRecorder(signals.subscription_canceled) as canceled:
            subscription_refresh("sub_1", cause="customer.subscription.deleted evt_2")

        assert _stored_status() == "canceled"
        assert len(canceled.calls) == 1

    def test_an_older_answer_never_revives_a_canceled_subscription(self, stripe_holds, ada, pro, caplog):
        subscribed(ada, pro, status="canceled")
        stripe_holds(status="active")

        with (
            SignalRecorder(signals.subscription_started) as started,
            caplog.at_level(logging.WARNING, logger="apps.payments.billing"),
        ):
            subscription_refresh("sub_1", cause="a late event")

        assert _stored_status() == "canceled"
        assert started.calls == []
        assert "subscription not revived id=sub_1 stored=canceled answer=active" in caplog.text

    def test_a_read_overtaken_by_another_store_is_not_stored_and_the_event_waits(self, stripe_holds, stripe_stand_in):
        data = stripe_holds(status="active")

        def another_drain_stores_meanwhile(call):
            with storing_state("sub_1"):
                pass
            return data

        stripe_stand_in.always("subscriptions.retrieve", another_drain_stores_meanwhile)

        with pytest.raises(EventNotReady, match="sub_1 was stored by another process"):
            subscription_refresh("sub_1", cause="customer.subscription.updated evt_3")

        assert _stored_status() is None

    def test_a_subscription_of_another_installation_is_not_stored(self, stripe_holds):
        stripe_holds(namespace="another-installation")

        assert subscription_refresh("sub_1", cause="test") is None
        assert _stored_status() is None

    def test_a_subscription_whose_customer_is_no_user_of_ours_is_stored_and_tells_no_one(self, stripe_holds):
        djstripe_models.Customer.objects.update(subscriber=None)
        stripe_holds(status="active")

        with SignalRecorder(signals.subscription_started) as started:
            subscription_refresh("sub_1", cause="test")

        assert _stored_status() == "active"
        assert started.calls == []

    def test_an_item_stripe_no_longer_lists_is_removed_here(self, stripe_holds, stripe_stand_in, ada, pro):
        plus = plan(product=pro.product, unit_amount=4500)
        subscribed(ada, pro)
        stripe_holds()
        stripe_stand_in.always(
            "subscriptions.retrieve", subscription_json("sub_1", customer=subscriber(ada), prices=[plus])
        )

        subscription_refresh("sub_1", cause="customer.subscription.updated evt_4")

        items = djstripe_models.SubscriptionItem.objects.filter(subscription__id="sub_1")
        assert [item.price.id for item in items.select_related("price")] == [f"price_{plus.pk}"]

    def test_a_second_live_subscription_to_one_product_is_an_error_for_an_operator(
        self, stripe_holds, stripe_stand_in, ada, pro, caplog
    ):
        subscribed(ada, pro, subscription_id="sub_0")
        stripe_holds(status="active")

        with caplog.at_level(logging.ERROR, logger="apps.payments.billing"):
            subscription_refresh("sub_1", cause="test")

        assert "customer holds two live subscriptions to one product" in caplog.text
        assert "sub_0" in caplog.text


class TestTrialEnding:
    def test_a_trial_ending_warns_the_customer_when_it_ends(self, stripe_holds):
        stripe_holds(status="trialing", trial_end=CREATED + 14 * 24 * 3600)

        with SignalRecorder(signals.subscription_trial_ending) as warned:
            outcome = subscription_trial_ending("sub_1", cause="customer.subscription.trial_will_end evt_1")

        assert outcome == BillingOutcome.TRIAL_ENDS.of(subscription="sub_1", trial_end=CREATED + 14 * 24 * 3600)
        assert [call["news"].trial_end for call in warned.calls] == [CREATED + 14 * 24 * 3600]

    def test_a_trial_that_ends_the_subscription_warns_of_no_charge(self, stripe_holds):
        stripe_holds(status="trialing", trial_end=CREATED + 60, cancel_at_period_end=True)

        with SignalRecorder(signals.subscription_trial_ending) as warned:
            outcome = subscription_trial_ending("sub_1", cause="test")

        assert outcome.kind is BillingOutcome.TRIAL_ENDS_WITH_SUBSCRIPTION
        assert warned.calls == []

    @pytest.mark.parametrize("holds", [{"status": "active"}, {"namespace": "another-installation"}])
    def test_no_trial_no_warning(self, stripe_holds, holds):
        stripe_holds(**holds)

        with SignalRecorder(signals.subscription_trial_ending) as warned:
            outcome = subscription_trial_ending("sub_1", cause="test")

        assert outcome.kind is BillingOutcome.NO_TRIAL_TO_END
        assert warned.calls == []


class TestInvoiceApply:
    def test_a_paid_renewal_is_stored_beside_its_subscription_and_mails_a_receipt(self, stripe_holds, ada, pro):
        subscribed(ada, pro)
        stripe_holds(invoice={"subscription_id": "sub_1", "status": "paid"})

        with SignalRecorder(signals.subscription_renewed) as renewed:
            outcome = invoice_apply("in_1", "invoice.paid", subscription_id="sub_1", cause="invoice.paid evt_1")

        assert outcome == BillingOutcome.INVOICE_PAID.of(invoice="in_1")
        invoice = djstripe_models.Invoice.objects.get(id="in_1")
        assert (invoice.stripe_data["status"], invoice.subscription.id) == ("paid", "sub_1")
        assert [(call["news"].user, call["news"].invoice_id, call["news"].amount) for call in renewed.calls] == [
            (ada, "in_1", 1500)
        ]

    @pytest.mark.parametrize(
        "invoice",
        [{"billing_reason": "subscription_create"}, {"billing_reason": "subscription_cycle", "amount": 0}],
        ids=["the-first-invoice", "nothing-charged"],
    )
    def test_a_paid_invoice_that_is_no_renewal_mails_no_receipt(self, stripe_holds, ada, pro, invoice):
        subscribed(ada, pro)
        stripe_holds(invoice={"subscription_id": "sub_1", **invoice})

        with SignalRecorder(signals.subscription_renewed) as renewed:
            outcome = invoice_apply("in_1", "invoice.paid", subscription_id="sub_1", cause="test")

        assert outcome.kind is BillingOutcome.INVOICE_PAID
        assert renewed.calls == []

    @pytest.mark.parametrize(
        ("event_type", "waiting", "action_required"),
        [
            ("invoice.payment_failed", BillingOutcome.INVOICE_UNPAID, False),
            ("invoice.payment_action_required", BillingOutcome.INVOICE_AWAITS_CUSTOMER, True),
        ],
    )
    def test_a_renewal_not_paid_asks_the_customer_with_the_portals_login_page(
        self, stripe_holds, ada, pro, event_type, waiting, action_required
    ):
        subscribed(ada, pro)
        stripe_holds(status="past_due", invoice={"subscription_id": "sub_1", "status": "open", "attempt_count": 2})

        with SignalRecorder(signals.subscription_payment_failed) as failed:
            outcome = invoice_apply("in_1", event_type, subscription_id="sub_1", cause="test")

        assert outcome == waiting.of(invoice="in_1", attempts=2)
        news = failed.calls[0]["news"]
        assert (news.invoice_id, news.portal_url, news.action_required) == ("in_1", PORTAL_LOGIN, action_required)
        assert news.invoice_url == "https://invoice.stripe.com/i/in_1"
        assert _stored_status() == "past_due"

    def test_once_the_retries_ran_out_and_the_plan_ended_no_one_is_asked_to_pay(self, stripe_holds, ada, pro):
        subscribed(ada, pro, status="past_due")
        stripe_holds(status="canceled", invoice={"subscription_id": "sub_1", "status": "open", "attempt_count": 4})

        with SignalRecorder(signals.subscription_payment_failed) as failed:
            outcome = invoice_apply("in_1", "invoice.payment_failed", subscription_id="sub_1", cause="test")

        assert outcome == BillingOutcome.INVOICE_STORED.of(invoice="in_1", status="open")
        assert failed.calls == []

    def test_an_older_open_answer_about_a_paid_invoice_is_not_stored_and_tells_nobody_it_failed(
        self, stripe_holds, ada, pro, caplog
    ):
        subscribed(ada, pro)
        invoiced(ada, "in_1", subscription_id="sub_1", status="paid")
        stripe_holds(invoice={"subscription_id": "sub_1", "status": "open"})

        with (
            SignalRecorder(signals.subscription_payment_failed) as failed,
            caplog.at_level(logging.WARNING, logger="apps.payments.billing"),
        ):
            outcome = invoice_apply("in_1", "invoice.payment_failed", subscription_id="sub_1", cause="a late event")

        assert outcome == BillingOutcome.INVOICE_STORED.of(invoice="in_1", status="paid")
        assert djstripe_models.Invoice.objects.get(id="in_1").stripe_data["status"] == "paid"
        assert failed.calls == []
        assert "invoice not reopened id=in_1 stored=paid answer=open" in caplog.text

    def test_an_invoice_of_another_installations_subscription_is_not_stored(self, stripe_holds):
        stripe_holds(namespace="another-installation", invoice={"subscription_id": "sub_1"})

        outcome = invoice_apply("in_1", "invoice.paid", subscription_id="sub_1", cause="test")

        assert outcome == BillingOutcome.INVOICE_OF_OTHER_INSTALLATION.of(invoice="in_1")
        assert not djstripe_models.Invoice.objects.filter(id="in_1").exists()
        assert _stored_status() is None

    def test_a_portal_stripe_will_not_describe_still_lets_the_failure_be_told(
        self, stripe_holds, stripe_stand_in, ada, pro
    ):
        subscribed(ada, pro)
        stripe_holds(status="past_due", invoice={"subscription_id": "sub_1", "status": "open"})
        stripe_stand_in.always("billing_portal.configurations.list", refused("This key may not read the portal."))

        with SignalRecorder(signals.subscription_payment_failed) as failed:
            invoice_apply("in_1", "invoice.payment_failed", subscription_id="sub_1", cause="test")

        assert [call["news"].portal_url for call in failed.calls] == [""]
