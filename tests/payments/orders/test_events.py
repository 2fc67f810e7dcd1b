"""The orders' Stripe event handlers (apps/payments/orders/events.py): Checkout Sessions completed, failed and
expired, intents paid, declined and canceled, charges and refunds from anywhere, each applied to the order and
payment it concerns.

Here each handler is fed Stripe-shaped event payloads directly (no signature, no drain), with Stripe played by
an in-memory stand-in where a handler asks it: duplicates, events out of order, a stale expiry, an amount
Stripe took that is not the order's, an event about something not recorded here yet (it waits:
`EventNotReady`) or not ours at all. The whole path, with signed deliveries over HTTP processed by a worker,
is covered in tests/journeys/test_checkout.py, tests/journeys/test_payment_intents.py and
tests/journeys/test_money_rules.py.
"""

import pytest

from apps.payments.orders import events
from apps.payments.orders.errors import EventNotReady
from apps.payments.orders.models import Order, OrderRefund, OrderStatus, Payment, PaymentLink, PaymentStatus
from apps.payments.orders.outcomes import OrderOutcome
from tests.payments.factories import OrderFactory, PaymentFactory

pytestmark = pytest.mark.django_db

OURS = {"app_namespace": "testsuite"}  # STRIPE_APP_NAMESPACE of the test settings
FOREIGN = {"app_namespace": "another-installation"}


def _event(event_type: str, obj: dict, *, event_id: str = "evt_1", created: int = 1_767_268_800) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": created,
        "livemode": False,
        "data": {"object": obj},
    }


def _session(**fields) -> dict:
    return {
        "id": "cs_test_1",
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": 5000,
        "currency": "eur",
        "payment_intent": "pi_1",
        "payment_link": None,
        "customer_details": {"email": "ada@example.com"},
        "metadata": OURS,
        **fields,
    }


def _intent(status: str, **fields) -> dict:
    return {
        "id": "pi_1",
        "object": "payment_intent",
        "status": status,
        "amount": 5000,
        "amount_received": 5000 if status == "succeeded" else 0,
        "currency": "eur",
        "last_payment_error": None,
        "metadata": OURS,
        **fields,
    }


def _declined() -> dict:
    return {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "generic_decline",
        "message": "Your card was declined.",
        "payment_method": {"id": "pm_1", "object": "payment_method", "card": {"brand": "visa", "last4": "0002"}},
    }


def _refund(refund_id: str = "re_1", amount: int = 1500, status: str = "succeeded", **fields) -> dict:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "currency": "eur",
        "payment_intent": "pi_1",
        "reason": "requested_by_customer",
        "status": status,
        "metadata": {},
        **fields,
    }


def _checkout_order(**fields) -> Order:
    return OrderFactory(checkout_session_id="cs_test_1", amount_total=5000, currency="eur", **fields)


def _app_order(**fields) -> Order:
    return OrderFactory(payment_intent_id="pi_1", amount_total=5000, currency="eur", **fields)


class TestSessionEvents:
    def test_a_completed_paid_session_pays_its_order_once_however_often_it_is_told(self):
        order = _checkout_order()
        completed = _event("checkout.session.completed", _session())

        first = events.on_session_paid(completed)
        again = events.on_session_paid(completed)

        assert (first.kind, again.kind) == (OrderOutcome.PAID, OrderOutcome.UNCHANGED)
        order.refresh_from_db()
        assert (order.status, order.transitions.get().cause) == (
            OrderStatus.PAID,
            "checkout.session.completed evt_1",
        )

    def test_a_delayed_payment_that_clears_later_pays_the_order(self):
        order = _checkout_order()
        events.on_session_paid(_event("checkout.session.completed", _session(payment_status="unpaid")))

        outcome = events.on_session_paid(
            _event("checkout.session.async_payment_succeeded", _session(), event_id="evt_2")
        )

        assert outcome == OrderOutcome.PAID.of(order=order.pk)
        assert Payment.objects.get(order=order).status == PaymentStatus.SUCCEEDED

    def test_a_failed_delayed_payment_fails_the_order(self):
        order = _checkout_order()

        outcome = events.on_session_payment_failed(
            _event("checkout.session.async_payment_failed", _session(payment_status="unpaid"))
        )

        assert outcome == OrderOutcome.FAILED.of(order=order.pk)
        assert Order.objects.get(pk=order.pk).status == OrderStatus.FAILED

    def test_a_failure_arriving_after_the_payment_changes_nothing(self):
        order = _checkout_order()
        events.on_session_paid(_event("checkout.session.completed", _session()))

        outcome = events.on_session_payment_failed(
            _event("checkout.session.async_payment_failed", _session(payment_status="unpaid"), event_id="evt_2")
        )

        assert outcome.kind is OrderOutcome.UNCHANGED
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID

    def test_a_failure_of_a_session_of_no_order_here_is_ignored(self):
        outcome = events.on_session_payment_failed(_event("checkout.session.async_payment_failed", _session()))

        assert outcome.kind is OrderOutcome.NO_ORDER_FOR_SESSION

    def test_an_expiry_is_checked_with_stripe_and_a_session_paid_after_all_pays_the_order(self, stripe_stand_in):
        order = _checkout_order()
        stripe_stand_in.answer("checkout.sessions.retrieve", _session())

        outcome = events.on_session_expired(
            _event("checkout.session.expired", _session(status="expired", payment_status="unpaid"))
        )

        assert outcome == OrderOutcome.PAID.of(order=order.pk)
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
        assert [call.args for call in stripe_stand_in.calls] == [("cs_test_1",)]
        assert Order.objects.get(pk=order.pk).transitions.get().cause == (
            "checkout.session.expired evt_1 (checked with Stripe)"
        )

    def test_an_expiry_stripe_confirms_expires_the_order(self, stripe_stand_in):
        order = _checkout_order()
        expired = _session(status="expired", payment_status="unpaid", payment_intent=None)
        stripe_stand_in.answer("checkout.sessions.retrieve", expired)

        outcome = events.on_session_expired(_event("checkout.session.expired", expired))

        assert outcome == OrderOutcome.EXPIRED.of(order=order.pk)
        assert Order.objects.get(pk=order.pk).status == OrderStatus.EXPIRED

    def test_an_expiry_of_a_session_of_no_order_here_asks_stripe_nothing(self, stripe_stand_in):
        outcome = events.on_session_expired(_event("checkout.session.expired", _session(status="expired")))

        assert outcome.kind is OrderOutcome.NO_ORDER_FOR_SESSION
        assert stripe_stand_in.calls == []


class TestIntentEvents:
    def test_an_apps_intent_that_succeeded_pays_its_order(self):
        order = _app_order()

        outcome = events.on_intent(_event("payment_intent.succeeded", _intent("succeeded")))

        assert outcome == OrderOutcome.PAID.of(order=order.pk)
        assert Payment.objects.get(payment_intent_id="pi_1").status == PaymentStatus.SUCCEEDED

    def test_an_intent_that_took_less_than_the_total_puts_the_order_in_review(self):
        order = _app_order()

        outcome = events.on_intent(_event("payment_intent.succeeded", _intent("succeeded", amount_received=4500)))

        assert outcome.kind is OrderOutcome.IN_REVIEW
        order.refresh_from_db()
        assert (order.status, order.amount_charged) == (OrderStatus.REVIEW, 4500)

    def test_a_declined_card_on_a_checkout_page_fails_the_order_stripe_names(self, stripe_stand_in):
        order = _checkout_order()  # its intent id is not stored yet: Stripe says which session it is for
        stripe_stand_in.answer("checkout.sessions.list", [_session(status="open", payment_status="unpaid")])

        outcome = events.on_intent(
            _event("payment_intent.payment_failed", _intent("requires_payment_method", last_payment_error=_declined()))
        )

        assert outcome.kind is OrderOutcome.MOVED_BY_INTENT
        assert Order.objects.get(pk=order.pk).status == OrderStatus.FAILED
        payment = Payment.objects.get(payment_intent_id="pi_1")
        assert (payment.status, payment.checkout_session_id, payment.decline_code) == (
            PaymentStatus.FAILED,
            "cs_test_1",
            "generic_decline",
        )
        assert stripe_stand_in.calls_to("checkout.sessions.list")[0].params["payment_intent"] == "pi_1"

    def test_a_decline_of_an_intent_stripe_knows_no_session_of_is_ignored(self, stripe_stand_in):
        stripe_stand_in.answer("checkout.sessions.list", [])

        outcome = events.on_intent(
            _event("payment_intent.payment_failed", _intent("requires_payment_method", last_payment_error=_declined()))
        )

        assert outcome.kind is OrderOutcome.NO_ORDER_FOR_PAYMENT
        assert not Payment.objects.exists()

    @pytest.mark.parametrize("status", ["succeeded", "processing"])
    def test_our_intent_paid_before_its_order_names_it_waits(self, status):
        """The session's event names the intent a moment later: dropping this one would lose the payment."""
        with pytest.raises(EventNotReady, match="pi_1"):
            events.on_intent(_event(f"payment_intent.{status}", _intent(status)))

    def test_an_intent_of_another_installation_is_ignored(self):
        outcome = events.on_intent(_event("payment_intent.succeeded", _intent("succeeded", metadata=FOREIGN)))

        assert outcome.kind is OrderOutcome.NO_ORDER_FOR_PAYMENT

    def test_a_late_decline_older_than_the_payment_does_not_undo_it(self):
        order = _app_order()
        events.on_intent(_event("payment_intent.succeeded", _intent("succeeded"), created=200))

        outcome = events.on_intent(
            _event(
                "payment_intent.payment_failed",
                _intent("requires_payment_method", last_payment_error=_declined()),
                event_id="evt_0",
                created=100,
            )
        )

        assert outcome.kind is OrderOutcome.UNCHANGED_BY_INTENT
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
        assert Payment.objects.get(payment_intent_id="pi_1").status == PaymentStatus.SUCCEEDED

    def test_an_apps_intent_canceled_in_stripe_cancels_its_order(self):
        order = _app_order()

        outcome = events.on_intent(_event("payment_intent.canceled", _intent("canceled")))

        assert outcome == OrderOutcome.MOVED_BY_INTENT.of(
            order=order.pk, status=OrderStatus.CANCELED, payment_status=PaymentStatus.CANCELED
        )
        assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELED

    def test_a_checkout_orders_intent_canceled_leaves_the_order_to_its_session(self):
        order = _checkout_order(payment_intent_id="pi_1")

        outcome = events.on_intent(_event("payment_intent.canceled", _intent("canceled")))

        assert outcome.kind is OrderOutcome.UNCHANGED_BY_INTENT
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING

    def test_an_intent_waiting_for_3d_secure_leaves_the_order_pending(self):
        order = _app_order()

        outcome = events.on_intent(_event("payment_intent.requires_action", _intent("requires_action")))

        assert outcome.kind is OrderOutcome.UNCHANGED_BY_INTENT
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING


class TestChargeEvents:
    def _charge(self, **fields) -> dict:
        return {
            "id": "ch_1",
            "object": "charge",
            "payment_intent": "pi_1",
            "status": "succeeded",
            "metadata": OURS,
            "outcome": {"type": "authorized"},
            "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
            **fields,
        }

    def test_a_charge_names_the_card_on_its_payment(self):
        PaymentFactory(payment_intent_id="pi_1", card_brand="", card_last4="")

        outcome = events.on_charge(_event("charge.succeeded", self._charge()))

        assert outcome == OrderOutcome.CARD_NOTED.of(payment_intent="pi_1", card="visa 4242")

    @pytest.mark.parametrize("status", ["succeeded", "pending"])
    def test_our_charge_before_its_payment_is_recorded_waits(self, status):
        with pytest.raises(EventNotReady):
            events.on_charge(_event(f"charge.{status}", self._charge(status=status)))

    def test_a_failed_charge_of_no_payment_here_is_ignored_rather_than_waited_for(self):
        outcome = events.on_charge(_event("charge.failed", self._charge(status="failed")))

        assert outcome.kind is OrderOutcome.NO_PAYMENT_FOR_CHARGE

    def test_a_charge_of_another_installation_is_ignored(self):
        outcome = events.on_charge(_event("charge.succeeded", self._charge(metadata=FOREIGN)))

        assert outcome.kind is OrderOutcome.NO_PAYMENT_FOR_CHARGE


class TestRefundEvents:
    def _paid(self) -> Order:
        return PaymentFactory(payment_intent_id="pi_1", order__payment_intent_id="pi_1", order__amount_total=5000).order

    def test_a_refund_made_in_the_dashboard_is_recorded_on_the_order_and_its_payment(self):
        order = self._paid()

        outcome = events.on_refund(_event("refund.created", _refund(amount=1500)))

        assert outcome == OrderOutcome.REFUND_RECORDED.of(order=order.pk)
        order.refresh_from_db()
        assert (order.status, order.amount_refunded) == (OrderStatus.PARTIALLY_REFUNDED, 1500)
        assert Payment.objects.get(payment_intent_id="pi_1").amount_refunded == 1500

    def test_the_same_refund_from_two_events_is_recorded_once(self):
        order = self._paid()
        events.on_refund(_event("refund.created", _refund(amount=1500)))

        outcome = events.on_refund(_event("refund.updated", _refund(amount=1500), event_id="evt_2"))

        assert outcome == OrderOutcome.REFUND_KNOWN.of(order=order.pk)
        assert Order.objects.get(pk=order.pk).amount_refunded == 1500

    @pytest.mark.parametrize("status", ["failed", "canceled", "requires_action"])
    def test_a_refund_that_did_not_go_through_is_not_recorded(self, status):
        self._paid()

        outcome = events.on_refund(_event("refund.updated", _refund(status=status)))

        assert outcome == OrderOutcome.REFUND_NOT_MADE.of(status=status)
        assert not OrderRefund.objects.exists()

    def test_a_refund_before_its_payment_is_recorded_waits(self, stripe_stand_in):
        _checkout_order()  # paid in Stripe, its events not here yet
        stripe_stand_in.answer("checkout.sessions.list", [_session()])

        with pytest.raises(EventNotReady, match="pending"):
            events.on_refund(_event("refund.created", _refund()))

        assert not OrderRefund.objects.exists()

    def test_a_refund_of_a_link_payment_whose_order_is_not_made_yet_waits(self, stripe_stand_in):
        PaymentLink.objects.create(stripe_id="plink_1", url="https://buy.stripe.com/1", currency="eur", lines=[])
        stripe_stand_in.answer("checkout.sessions.list", [_session(id="cs_link", payment_link="plink_1")])

        with pytest.raises(EventNotReady, match="cs_link"):
            events.on_refund(_event("refund.created", _refund()))

    def test_a_refund_of_a_payment_that_is_none_of_ours_is_ignored(self, stripe_stand_in):
        stripe_stand_in.answer("checkout.sessions.list", [])

        outcome = events.on_refund(_event("refund.created", _refund()))

        assert outcome.kind is OrderOutcome.NO_ORDER_FOR_REFUND

    def test_charge_refunded_records_each_refund_that_went_through(self):
        order = self._paid()
        charge = {
            "id": "ch_1",
            "object": "charge",
            "payment_intent": "pi_1",
            "amount_refunded": 3000,
            "refunds": {
                "object": "list",
                "data": [_refund("re_1", 1000), _refund("re_2", 2000, "pending"), _refund("re_3", 500, "failed")],
            },
        }

        outcome = events.on_charge_refunded(_event("charge.refunded", charge))

        assert outcome == OrderOutcome.REFUNDS_RECORDED.of(order=order.pk, count=2)
        assert sorted(OrderRefund.objects.values_list("stripe_refund_id", "amount")) == [("re_1", 1000), ("re_2", 2000)]
        assert Order.objects.get(pk=order.pk).amount_refunded == 3000

    def test_charge_refunded_for_no_order_here_is_ignored(self, stripe_stand_in):
        stripe_stand_in.answer("checkout.sessions.list", [])
        charge = {"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "refunds": {"data": [_refund()]}}

        outcome = events.on_charge_refunded(_event("charge.refunded", charge))

        assert outcome.kind is OrderOutcome.NO_ORDER_FOR_CHARGE
