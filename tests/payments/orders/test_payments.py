"""Payments (apps/payments/orders/payments.py): each attempt to pay an order, written from what Stripe says of
its intent, its Checkout Session, its charges and its refunds.

Here the rules on their own, fed Stripe-shaped dicts: an older event never overwrites a newer one, a settled
payment is not moved back, a failure keeps its reasons and card, refunds are mirrored on the payment. The
same rules over HTTP, with an app paying through the SDK and Stripe's events, are in
tests/journeys/test_payment_intents.py; a late failed charge and a failed delayed payment seen again are in
tests/payments/orders/test_lifecycle.py.
"""

import logging

import pytest

from apps.payments.orders.models import OrderStatus, Payment, PaymentStatus
from apps.payments.orders.payments import (
    payment_note_charge,
    payment_note_refunds,
    payment_record,
    payment_record_session,
    payment_status_of,
)
from tests.payments.factories import OrderFactory, PaymentFactory

pytestmark = pytest.mark.django_db


def _intent(intent_id: str = "pi_1", status: str = "requires_payment_method", **fields) -> dict:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": 5000,
        "amount_received": 5000 if status == "succeeded" else 0,
        "currency": "eur",
        "status": status,
        "last_payment_error": None,
        "metadata": {},
        **fields,
    }


def _declined(code: str = "card_declined", decline_code: str = "insufficient_funds", last4: str = "9995") -> dict:
    """A `last_payment_error` as Stripe sends it, with the card that was declined."""
    return {
        "type": "card_error",
        "code": code,
        "decline_code": decline_code,
        "message": "Your card has insufficient funds.",
        "payment_method": {"id": "pm_1", "object": "payment_method", "card": {"brand": "visa", "last4": last4}},
    }


def _session(order, **fields) -> dict:
    return {
        "id": "cs_test_1",
        "object": "checkout.session",
        "mode": "payment",
        "payment_intent": "pi_session",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": order.amount_total,
        "currency": order.currency.upper(),
        **fields,
    }


def _charge(payment_intent: str, status: str = "succeeded", **fields) -> dict:
    return {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": payment_intent,
        "status": status,
        "failure_code": None,
        "failure_message": None,
        "outcome": {"type": "authorized", "reason": None},
        "payment_method_details": {"type": "card", "card": {"brand": "mastercard", "last4": "4444"}},
        "metadata": {},
        **fields,
    }


class TestStatusOfAnIntent:
    @pytest.mark.parametrize(
        ("stripe_status", "shown"),
        [
            ("requires_payment_method", PaymentStatus.PENDING),
            ("requires_confirmation", PaymentStatus.PENDING),
            ("requires_action", PaymentStatus.PENDING),
            ("requires_capture", PaymentStatus.PROCESSING),
            ("processing", PaymentStatus.PROCESSING),
            ("succeeded", PaymentStatus.SUCCEEDED),
            ("canceled", PaymentStatus.CANCELED),
            ("a_status_stripe_adds_later", PaymentStatus.PENDING),
        ],
    )
    def test_each_intent_status_is_shown_as_a_payer_would_name_it(self, stripe_status, shown):
        assert payment_status_of(_intent(status=stripe_status)) == shown

    def test_an_intent_back_at_requires_payment_method_with_an_error_is_a_failed_attempt(self):
        assert payment_status_of(_intent(last_payment_error=_declined())) == PaymentStatus.FAILED


class TestPaymentRecord:
    def test_an_intent_makes_a_pending_payment_of_its_amount_and_currency(self):
        order = OrderFactory(amount_total=5000, currency="eur")

        payment = payment_record(order=order, intent=_intent(currency="EUR"))

        stored = Payment.objects.get(payment_intent_id="pi_1")
        assert stored.pk == payment.pk
        assert (stored.order_id, stored.amount, stored.currency) == (order.pk, 5000, "eur")
        assert (stored.status, stored.stripe_status) == (PaymentStatus.PENDING, "requires_payment_method")

    def test_a_declined_card_fails_the_payment_with_its_reasons_and_card(self):
        order = OrderFactory()

        payment_record(order=order, intent=_intent(last_payment_error=_declined()), at=100)

        payment = Payment.objects.get(payment_intent_id="pi_1")
        assert payment.status == PaymentStatus.FAILED
        assert (payment.failure_code, payment.decline_code) == ("card_declined", "insufficient_funds")
        assert payment.failure_message == "Your card has insufficient funds."
        assert (payment.card_brand, payment.card_last4) == ("visa", "9995")
        assert payment.failed_at is not None

    def test_a_second_card_that_pays_succeeds_and_the_first_decline_stays_on_record(self):
        order = OrderFactory()
        payment_record(order=order, intent=_intent(last_payment_error=_declined()), at=100)

        payment_record(order=order, intent=_intent(status="succeeded"), at=200)

        payment = Payment.objects.get(payment_intent_id="pi_1")
        assert (payment.status, payment.stripe_status) == (PaymentStatus.SUCCEEDED, "succeeded")
        assert payment.decline_code == "insufficient_funds"
        assert payment.succeeded_at is not None

    def test_an_older_event_arriving_after_a_newer_one_changes_nothing(self):
        order = OrderFactory()
        payment_record(order=order, intent=_intent(status="processing"), at=200)

        payment_record(order=order, intent=_intent(last_payment_error=_declined()), at=100)

        payment = Payment.objects.get(payment_intent_id="pi_1")
        assert (payment.status, payment.stripe_status, payment.failure_code) == (
            PaymentStatus.PROCESSING,
            "processing",
            "",
        )

    def test_what_we_were_told_directly_is_never_taken_for_an_older_event(self):
        order = OrderFactory()
        payment_record(order=order, intent=_intent(status="processing"), at=200)

        payment_record(order=order, intent=_intent(status="succeeded"))  # our own fetch: `at` is 0

        assert Payment.objects.get(payment_intent_id="pi_1").status == PaymentStatus.SUCCEEDED

    @pytest.mark.parametrize("settled", [PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED, PaymentStatus.REFUNDED])
    def test_a_settled_payment_is_not_moved_back_by_a_later_event(self, settled):
        payment = PaymentFactory(status=settled, payment_intent_id="pi_1", stripe_event_at=100)

        payment_record(order=payment.order, intent=_intent(status="requires_action"), at=200)

        assert Payment.objects.get(pk=payment.pk).status == settled

    def test_an_intent_already_paying_another_order_is_left_alone_and_logged(self, caplog):
        theirs = PaymentFactory(payment_intent_id="pi_1", status=PaymentStatus.PENDING)
        mine = OrderFactory()

        with caplog.at_level(logging.ERROR, logger="apps.payments.orders"):
            payment_record(order=mine, intent=_intent(status="succeeded"), at=100)

        payment = Payment.objects.get(pk=theirs.pk)
        assert (payment.order_id, payment.status) == (theirs.order_id, PaymentStatus.PENDING)
        assert not Payment.objects.filter(order=mine).exists()
        assert f"payment names another order intent=pi_1 payment_order={theirs.order_id} order={mine.pk}" in caplog.text

    def test_stripes_long_failure_message_is_kept_cut_to_fit(self):
        long_error = {**_declined(), "message": "x" * 800, "code": "c" * 150}

        payment_record(order=OrderFactory(), intent=_intent(last_payment_error=long_error))

        payment = Payment.objects.get(payment_intent_id="pi_1")
        assert (len(payment.failure_message), len(payment.failure_code)) == (500, 100)


class TestPaymentRecordSession:
    def test_a_session_without_an_intent_records_no_payment(self):
        order = OrderFactory()

        assert payment_record_session(order=order, session=_session(order, payment_intent=None)) is None
        assert not Payment.objects.exists()

    def test_a_paid_session_records_its_intent_as_a_succeeded_payment_of_the_session(self):
        order = OrderFactory(amount_total=5700, currency="eur")

        payment_record_session(order=order, session=_session(order))

        payment = Payment.objects.get(payment_intent_id="pi_session")
        assert (payment.order_id, payment.checkout_session_id, payment.status) == (
            order.pk,
            "cs_test_1",
            PaymentStatus.SUCCEEDED,
        )
        assert (payment.amount, payment.currency) == (5700, "eur")

    def test_a_completed_session_whose_delayed_payment_runs_shows_it_processing(self):
        order = OrderFactory()

        payment_record_session(order=order, session=_session(order, payment_status="unpaid"))

        assert Payment.objects.get(payment_intent_id="pi_session").status == PaymentStatus.PROCESSING

    def test_a_payment_made_from_the_intent_first_gets_its_session_named(self):
        order = OrderFactory()
        payment_record(order=order, intent=_intent("pi_session", status="succeeded"), at=100)

        payment_record_session(order=order, session=_session(order))

        assert Payment.objects.get(payment_intent_id="pi_session").checkout_session_id == "cs_test_1"

    def test_a_session_naming_another_orders_intent_moves_nothing(self):
        theirs = PaymentFactory(payment_intent_id="pi_session", status=PaymentStatus.PENDING)
        mine = OrderFactory()

        payment_record_session(order=mine, session=_session(mine))

        assert Payment.objects.get(pk=theirs.pk).status == PaymentStatus.PENDING


class TestPaymentNoteCharge:
    def test_a_charge_of_no_payment_of_ours_is_not_recorded(self):
        assert payment_note_charge(charge=_charge("pi_elsewhere")) is None
        assert payment_note_charge(charge=_charge(None)) is None

    def test_a_succeeded_charge_names_the_card_that_paid(self):
        payment = PaymentFactory(card_brand="", card_last4="")

        payment_note_charge(charge=_charge(payment.payment_intent_id))

        payment.refresh_from_db()
        assert (payment.card_brand, payment.card_last4) == ("mastercard", "4444")

    def test_a_bank_decline_keeps_the_banks_reason_as_the_decline_code(self):
        payment = PaymentFactory(status=PaymentStatus.PENDING)
        declined = _charge(
            payment.payment_intent_id,
            status="failed",
            failure_code="card_declined",
            failure_message="Your card was declined.",
            outcome={"type": "issuer_declined", "reason": "stolen_card"},
        )

        payment_note_charge(charge=declined)

        payment.refresh_from_db()
        assert (payment.failure_code, payment.decline_code, payment.failure_message) == (
            "card_declined",
            "stolen_card",
            "Your card was declined.",
        )

    def test_a_charge_blocked_by_stripe_has_no_decline_code_of_a_bank(self):
        payment = PaymentFactory(status=PaymentStatus.PENDING)
        blocked = _charge(
            payment.payment_intent_id,
            status="failed",
            failure_code="card_declined",
            outcome={"type": "blocked", "reason": "highest_risk_level"},
        )

        payment_note_charge(charge=blocked)

        payment.refresh_from_db()
        assert (payment.failure_code, payment.decline_code) == ("card_declined", "")


class TestPaymentNoteRefunds:
    def test_part_of_the_order_refunded_is_part_of_its_payment_refunded(self):
        payment = PaymentFactory(order__amount_total=5000)
        order = payment.order
        order.amount_refunded = 1500

        payment_note_refunds(order=order)

        payment.refresh_from_db()
        assert (payment.status, payment.amount_refunded) == (PaymentStatus.PARTIALLY_REFUNDED, 1500)

    def test_all_of_it_refunded_is_a_refunded_payment(self):
        payment = PaymentFactory(order__amount_total=5000)
        order = payment.order
        order.amount_refunded = 5000

        payment_note_refunds(order=order)

        payment.refresh_from_db()
        assert (payment.status, payment.amount_refunded) == (PaymentStatus.REFUNDED, 5000)

    def test_never_more_goes_back_of_a_payment_than_it_took(self):
        """An order in review can hold more than one payment's worth of refunds."""
        payment = PaymentFactory(amount=3000, order__amount_total=5000, order__status=OrderStatus.REVIEW)
        order = payment.order
        order.amount_refunded = 5000

        payment_note_refunds(order=order)

        payment.refresh_from_db()
        assert (payment.status, payment.amount_refunded) == (PaymentStatus.REFUNDED, 3000)

    def test_an_order_without_the_payment_that_paid_it_changes_no_payment(self):
        other = PaymentFactory(payment_intent_id="pi_an_earlier_attempt", status=PaymentStatus.FAILED)
        order = other.order  # paid by another intent, whose payment is not recorded here
        order.amount_refunded = 1000

        payment_note_refunds(order=order)

        other.refresh_from_db()
        assert (other.status, other.amount_refunded) == (PaymentStatus.FAILED, 0)
