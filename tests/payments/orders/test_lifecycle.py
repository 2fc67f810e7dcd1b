"""The order rules on their own: which moves are legal, refund arithmetic, the double-click rule. The
database only (the transitions lock rows); no worker, no Stripe."""

import logging
import threading
import time
from datetime import timedelta

import pytest
import stripe
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from apps.payments.gateway.errors import StripeRefused, StripeUnavailable
from apps.payments.orders.checkout import canceled_unless_started
from apps.payments.orders.errors import CheckoutUnavailable, OrderActionRefused, RefundNotApplicable
from apps.payments.orders.intents import intent_apply
from apps.payments.orders.lifecycle import order_payment_settle, order_transition
from apps.payments.orders.models import (
    ORDER_TRANSITIONS,
    Order,
    OrderRefund,
    OrderStatus,
    OrderTransition,
    Payment,
    PaymentStatus,
    RefundRequest,
    RefundRequestState,
)
from apps.payments.orders.outcomes import OrderOutcome
from apps.payments.orders.payments import payment_note_charge, payment_note_refunds, payment_record_session
from apps.payments.orders.refunds import DOUBLE_CLICK_SECONDS, order_apply_refund, order_refund
from apps.payments.signals import order_paid
from tests.payments.factories import OrderFactory, OrderRefundFactory, PaymentFactory
from tests.signal_recorder import SignalRecorder
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

MOVES = [(start, to) for start in OrderStatus.values for to in OrderStatus.values]


@pytest.mark.parametrize(("start", "to"), MOVES, ids=[f"{start}->{to}" for start, to in MOVES])
def test_a_move_happens_exactly_when_the_transition_table_allows_it(start, to):
    order = OrderFactory(status=start, amount_charged=5000, currency_charged="eur")
    repeat = start == to and to != OrderStatus.PARTIALLY_REFUNDED  # the same status again is no move
    refunding = to in (OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED)
    refund = OrderRefundFactory(order=order) if refunding else None  # a refund move always carries its refund

    moved = order_transition(order_id=order.pk, to=to, cause="test", refund=refund)

    order.refresh_from_db()
    legal = to in ORDER_TRANSITIONS[start] and not repeat
    assert moved is legal
    assert order.status == (to if legal else start)
    assert OrderTransition.objects.filter(order=order).count() == (1 if legal else 0)


def test_paid_and_refunded_are_announced_once_review_is_not():
    paid, review = OrderFactory(), OrderFactory()
    with SignalRecorder(order_paid) as announced:
        order_transition(order_id=paid.pk, to=OrderStatus.PAID, cause="test")
        order_transition(order_id=paid.pk, to=OrderStatus.PAID, cause="duplicate event")
        order_transition(order_id=review.pk, to=OrderStatus.REVIEW, cause="another amount")

    assert [call["order_id"] for call in announced.calls] == [paid.pk]


def test_a_payment_of_another_amount_goes_to_review_and_logs_an_error(caplog):
    short, exact = OrderFactory(amount_total=5000), OrderFactory(amount_total=5000)

    with caplog.at_level(logging.ERROR, logger="apps.payments.orders"):
        parked = order_payment_settle(
            order_id=short.pk, amount=4999, currency="EUR", payment_intent_id="pi_short", cause="test"
        )
        paid = order_payment_settle(
            order_id=exact.pk, amount=5000, currency="eur", payment_intent_id="pi_exact", cause="test"
        )

    short.refresh_from_db()
    assert (short.status, short.amount_charged, short.currency_charged) == (OrderStatus.REVIEW, 4999, "eur")
    assert (parked.kind, parked.facts["charged"], parked.facts["charged_currency"]) == (
        OrderOutcome.IN_REVIEW,
        4999,
        "eur",
    )
    assert str(parked).startswith(f"order {short.pk} in review: Stripe took 4999 eur")
    assert paid == OrderOutcome.PAID.of(order=exact.pk)
    errors = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1  # the exact payment logs no error
    assert errors[0].startswith(f"order payment needs review order={short.pk} status=pending expected=5000 eur")
    assert "charged=4999 eur payment_intent=pi_short" in errors[0]


class TestRefundArithmetic:
    def test_refunds_add_up_to_refunded_and_never_past_what_stripe_took(self):
        order = OrderFactory(paid=True, amount_total=5000)

        order_apply_refund(order_id=order.pk, stripe_refund_id="re_1", amount=1500, cause="test")
        order.refresh_from_db()
        assert (order.status, order.amount_refunded, order.amount_remaining) == (
            OrderStatus.PARTIALLY_REFUNDED,
            1500,
            3500,
        )

        order_apply_refund(order_id=order.pk, stripe_refund_id="re_2", amount=9000, cause="more than remains")
        order.refresh_from_db()
        assert (order.status, order.amount_refunded, order.amount_remaining) == (OrderStatus.REFUNDED, 5000, 0)
        assert sorted(OrderRefund.objects.values_list("amount", flat=True)) == [1500, 3500]

    def test_the_same_refund_told_twice_is_recorded_once(self):
        order = OrderFactory(paid=True)

        first = order_apply_refund(order_id=order.pk, stripe_refund_id="re_1", amount=1000, cause="event")
        second = order_apply_refund(order_id=order.pk, stripe_refund_id="re_1", amount=1000, cause="our answer")

        order.refresh_from_db()
        assert (first, second, order.amount_refunded) == (True, False, 1000)

    def test_a_refund_before_its_payment_waits(self):
        order = OrderFactory()

        with pytest.raises(RefundNotApplicable):
            order_apply_refund(order_id=order.pk, stripe_refund_id="re_1", amount=1000, cause="early event")
        assert not OrderRefund.objects.exists()

    @pytest.mark.parametrize("amount", [0, 5001])
    def test_an_amount_outside_what_remains_is_a_field_error(self, amount):
        order = OrderFactory(paid=True)

        with pytest.raises(ValidationError) as refused:
            order_refund(order=order, amount=amount, by=UserFactory(is_staff=True))

        assert "At most 5000" in str(refused.value.message_dict["amount"])

    def test_an_unpaid_order_cannot_be_refunded(self):
        with pytest.raises(OrderActionRefused):
            order_refund(order=OrderFactory(), amount=None, by=UserFactory(is_staff=True))


class TestDoubleClick:
    """The same refund asked again by the same person within seconds gets the refund already made; anyone
    else, or the same person later, asks Stripe (which this test has none of: `StripeUnavailable`)."""

    def _refund_just_made(self, by, seconds_ago: float = 1) -> OrderRefund:
        key = "order:{}:refund:0:rest"
        refund = OrderRefundFactory(created_by=by, amount=1000, idempotency_key=None)
        order = refund.order
        OrderRefund.objects.filter(pk=refund.pk).update(idempotency_key=key.format(order.pk))
        # The first click's request, settled with its refund.
        request = RefundRequest.objects.create(
            order=order,
            amount=1000,
            amount_asked=None,
            reason="requested_by_customer",
            idempotency_key=key.format(order.pk),
            created_by=by,
            state=RefundRequestState.SETTLED,
            refund=refund,
        )
        RefundRequest.objects.filter(pk=request.pk).update(created_at=timezone.now() - timedelta(seconds=seconds_ago))
        # What the first click left: a part refunded, the rest still refundable.
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.PARTIALLY_REFUNDED, amount_refunded=1000)
        return OrderRefund.objects.get(pk=refund.pk)

    def test_the_same_person_again_gets_the_same_refund(self):
        staff = UserFactory(is_staff=True)
        made = self._refund_just_made(staff)

        again = order_refund(order=made.order, amount=None, by=staff)

        assert again.pk == made.pk

    def test_someone_else_is_not_a_double_click(self, settings):
        settings.STRIPE_SECRET_KEY = ""
        made = self._refund_just_made(UserFactory(is_staff=True))

        with pytest.raises(StripeUnavailable):
            order_refund(order=made.order, amount=None, by=UserFactory(is_staff=True))

    def test_the_same_person_later_is_a_new_request(self, settings):
        settings.STRIPE_SECRET_KEY = ""
        staff = UserFactory(is_staff=True)
        made = self._refund_just_made(staff, seconds_ago=DOUBLE_CLICK_SECONDS + 5)

        with pytest.raises(StripeUnavailable):
            order_refund(order=made.order, amount=None, by=staff)


@pytest.mark.django_db(transaction=True)
def test_a_late_intent_event_and_a_refund_of_its_order_wait_for_each_other_without_deadlock():
    """The refund locks the order, then its payment; a late `payment_intent.succeeded` about the same payment
    must take the locks in the same order, or PostgreSQL kills one of them (a refund answered with a 500)."""
    payment = PaymentFactory(status=PaymentStatus.PENDING)
    order = payment.order
    intent = {
        "id": payment.payment_intent_id,
        "status": "succeeded",
        "amount": order.amount_total,
        "amount_received": order.amount_total,
        "currency": order.currency,
    }
    refund_holds_the_order, errors = threading.Event(), []

    def refund():
        try:
            with transaction.atomic():
                locked = Order.objects.select_for_update().get(pk=order.pk)
                refund_holds_the_order.set()
                time.sleep(0.5)  # the event arrives meanwhile
                payment_note_refunds(order=locked)
        except Exception as error:  # noqa: BLE001 - the test reports whatever went wrong
            errors.append(error)
        finally:
            connection.close()

    def late_event():
        refund_holds_the_order.wait()
        try:
            with transaction.atomic():  # as `process_event` runs a handler
                intent_apply(order=order, intent=intent, cause="late event")
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=refund), threading.Thread(target=late_event)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED


class TestPaymentRecords:
    def test_a_late_failed_charge_does_not_replace_the_card_that_paid(self, db):
        payment = PaymentFactory(card_brand="mastercard", card_last4="4444")
        late = {
            "payment_intent": payment.payment_intent_id,
            "status": "failed",
            "failure_code": "card_declined",
            "outcome": {"type": "issuer_declined", "reason": "insufficient_funds"},
            "payment_method_details": {"card": {"brand": "visa", "last4": "9995"}},
        }

        payment_note_charge(charge=late)

        payment.refresh_from_db()
        assert (payment.status, payment.card_brand, payment.card_last4) == ("succeeded", "mastercard", "4444")

    def test_a_failed_delayed_payment_is_not_processing_again_when_its_session_is_seen_later(self, db):
        payment = PaymentFactory(status=PaymentStatus.FAILED, order__status=OrderStatus.FAILED)
        session = {
            "id": "cs_test_1",
            "payment_intent": payment.payment_intent_id,
            "status": "complete",
            "payment_status": "unpaid",
            "amount_total": payment.amount,
            "currency": payment.currency,
        }

        payment_record_session(order=payment.order, session=session)

        assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.FAILED

    def test_a_twin_request_that_started_the_payment_keeps_its_order(self, db):
        """Two identical requests share an order; Stripe refuses one's call after the other's succeeded."""
        order = OrderFactory(payment_intent_id="pi_made_by_the_twin")

        with pytest.raises(StripeRefused), canceled_unless_started(order, "payment intent"):
            raise stripe.InvalidRequestError("refused", param=None)

        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING

    def test_without_a_twin_a_refused_payment_cancels_its_order(self, db):
        order = OrderFactory()

        with pytest.raises(StripeRefused), canceled_unless_started(order, "payment intent"):
            raise stripe.InvalidRequestError("refused", param=None)

        assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELED

    def test_an_unanswered_start_keeps_its_order_for_the_retry(self, db):
        """Stripe may have made the intent: the retry asks again with the order's key and gets it back."""
        order = OrderFactory()

        with pytest.raises(CheckoutUnavailable) as unanswered, canceled_unless_started(order, "payment intent"):
            raise StripeUnavailable("timed out", retry_after=3)

        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING
        assert unanswered.value.retry_after == 3
