"""Billing's Stripe event handlers (apps/payments/billing/events.py): subscription-mode Checkout Sessions, a
subscription created, updated, deleted or its trial ending, and its invoices paid, failed, waiting for the
customer or announced. Each event is applied by asking Stripe for the object as it is now, so a stale,
repeated or reordered event changes nothing more.

Here the handlers are fed Stripe-shaped event payloads, with Stripe played by an in-memory stand-in whose
answer may differ from the payload. What storing does with each answer is in
tests/payments/billing/test_store.py; the same events signed, delivered over HTTP and processed by a worker
are covered in tests/journeys/test_subscriptions.py.
"""

import pytest
from djstripe import models as djstripe_models

from apps.payments import signals
from apps.payments.billing import events
from apps.payments.billing.outcomes import BillingOutcome
from tests.payments.billing.factories import CREATED, invoice_json, plan, stripe_account, subscriber, subscription_json
from tests.signal_recorder import SignalRecorder
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db


def _event(event_type: str, obj: dict, event_id: str = "evt_1") -> dict:
    return {"id": event_id, "object": "event", "type": event_type, "created": CREATED, "data": {"object": obj}}


@pytest.fixture
def customer(db) -> str:
    stripe_account()
    return subscriber(UserFactory())


@pytest.fixture
def pro(db):
    return plan("Pro")


def _stored_status() -> str:
    return djstripe_models.Subscription.objects.get(id="sub_1").stripe_data["status"]


class TestSubscriptionEvents:
    def test_what_stripe_holds_now_is_stored_whatever_the_event_said(self, stripe_stand_in, customer, pro):
        stripe_stand_in.always(
            "subscriptions.retrieve", subscription_json("sub_1", customer=customer, prices=[pro], status="canceled")
        )
        stale = subscription_json("sub_1", customer=customer, prices=[pro], status="active")

        outcome = events.on_subscription(_event("customer.subscription.updated", stale))

        assert outcome == BillingOutcome.SUBSCRIPTION_STORED.of(subscription="sub_1", status="canceled")
        assert _stored_status() == "canceled"

    def test_the_same_event_twice_stores_the_same_state(self, stripe_stand_in, customer, pro):
        data = subscription_json("sub_1", customer=customer, prices=[pro])
        stripe_stand_in.always("subscriptions.retrieve", data)

        first = events.on_subscription(_event("customer.subscription.created", data))
        again = events.on_subscription(_event("customer.subscription.created", data))

        assert first == again == BillingOutcome.SUBSCRIPTION_STORED.of(subscription="sub_1", status="active")
        assert djstripe_models.Subscription.objects.filter(id="sub_1").count() == 1

    def test_a_trial_will_end_event_warns_of_the_trials_end(self, stripe_stand_in, customer, pro):
        trial_end = CREATED + 14 * 24 * 3600
        data = subscription_json("sub_1", customer=customer, prices=[pro], status="trialing", trial_end=trial_end)
        stripe_stand_in.always("subscriptions.retrieve", data)

        with SignalRecorder(signals.subscription_trial_ending) as warned:
            outcome = events.on_subscription(_event("customer.subscription.trial_will_end", data))

        assert outcome == BillingOutcome.TRIAL_ENDS.of(subscription="sub_1", trial_end=trial_end)
        assert len(warned.calls) == 1

    def test_a_subscription_of_another_installation_is_ignored(self, stripe_stand_in, customer, pro):
        theirs = subscription_json("sub_1", customer=customer, prices=[pro], namespace="another-installation")
        stripe_stand_in.always("subscriptions.retrieve", theirs)

        outcome = events.on_subscription(_event("customer.subscription.deleted", theirs))

        assert outcome.kind is BillingOutcome.OTHER_INSTALLATION
        assert not djstripe_models.Subscription.objects.exists()


class TestInvoiceEvents:
    def test_an_invoice_of_no_subscription_is_not_billings_and_asks_stripe_nothing(self, stripe_stand_in, customer):
        one_off = invoice_json("in_1", customer=customer, subscription_id=None, billing_reason="manual")

        outcome = events.on_invoice(_event("invoice.paid", one_off))

        assert outcome.kind is BillingOutcome.NOT_A_SUBSCRIPTION_INVOICE
        assert stripe_stand_in.calls == []

    def test_an_upcoming_invoice_brings_the_subscription_up_to_date_and_says_when_it_renews(
        self, stripe_stand_in, customer, pro
    ):
        stripe_stand_in.always("subscriptions.retrieve", subscription_json("sub_1", customer=customer, prices=[pro]))
        preview = {
            **invoice_json("in_preview", customer=customer, subscription_id="sub_1", status="draft"),
            "next_payment_attempt": CREATED + 30 * 24 * 3600,
        }
        del preview["id"]  # a preview has none

        outcome = events.on_invoice(_event("invoice.upcoming", preview))

        assert outcome == BillingOutcome.RENEWS.of(subscription="sub_1", next_payment_attempt=CREATED + 30 * 24 * 3600)
        assert stripe_stand_in.paths == ["subscriptions.retrieve"]
        assert _stored_status() == "active"

    @pytest.mark.parametrize("names_it", ["parent", "top-level"])
    def test_a_paid_invoice_is_stored_with_its_subscription_however_stripe_names_it(
        self, stripe_stand_in, customer, pro, names_it
    ):
        """Since API 2025-03-31 an invoice names its subscription under `parent`; before, at the top level."""
        invoice = invoice_json("in_1", customer=customer, subscription_id="sub_1")
        if names_it == "top-level":
            invoice = {**invoice, "parent": None, "subscription": "sub_1"}
        stripe_stand_in.always("invoices.retrieve", invoice)
        stripe_stand_in.always("subscriptions.retrieve", subscription_json("sub_1", customer=customer, prices=[pro]))

        outcome = events.on_invoice(_event("invoice.paid", invoice))

        assert outcome == BillingOutcome.INVOICE_PAID.of(invoice="in_1")
        assert djstripe_models.Invoice.objects.get(id="in_1").subscription.id == "sub_1"

    def test_an_open_invoice_in_a_stale_payment_failed_event_tells_nobody_once_stripe_holds_it_paid(
        self, stripe_stand_in, customer, pro
    ):
        open_invoice = invoice_json("in_1", customer=customer, subscription_id="sub_1", status="open")
        stripe_stand_in.always("invoices.retrieve", invoice_json("in_1", customer=customer, subscription_id="sub_1"))
        stripe_stand_in.always("subscriptions.retrieve", subscription_json("sub_1", customer=customer, prices=[pro]))

        with SignalRecorder(signals.subscription_payment_failed) as failed:
            outcome = events.on_invoice(_event("invoice.payment_failed", open_invoice))

        assert outcome == BillingOutcome.INVOICE_STORED.of(invoice="in_1", status="paid")
        assert failed.calls == []


def test_a_completed_subscription_checkout_stores_the_subscription_it_started(stripe_stand_in, customer, pro):
    stripe_stand_in.always("subscriptions.retrieve", subscription_json("sub_1", customer=customer, prices=[pro]))
    session = {
        "id": "cs_1",
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "subscription": "sub_1",
    }

    outcome = events.on_session(_event("checkout.session.completed", session))

    assert outcome == BillingOutcome.SUBSCRIPTION_STORED.of(subscription="sub_1", status="active")
    assert _stored_status() == "active"
