"""Refunds asked for here (apps/payments/orders/refunds.py): written down as a `RefundRequest`, asked of Stripe
once with the request's own key, then recorded; one whose answer was lost is finished by the worker with the
same key; who may refund whose order, and when.

The arithmetic of recording refunds (never more than Stripe took, the same refund once, a refund before its
payment waits) and the double click are in tests/payments/orders/test_lifecycle.py. Here what it leaves out,
with Stripe played by an in-memory stand-in: what is asked of Stripe, what a refusal, a spent key or no answer
leaves behind, requests in flight counting against what remains, client keys, and the worker. The whole path
over HTTP, with a web worker killed between Stripe's answer and the record, is in tests/journeys/test_refunds.py.
"""

from datetime import timedelta

import pytest
import stripe
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.payments.gateway.errors import StripeKeySpent, StripeRefused
from apps.payments.orders.errors import OrderActionRefused
from apps.payments.orders.idempotency import IdempotencyConflict
from apps.payments.orders.models import Order, OrderRefund, OrderStatus, RefundRequest, RefundRequestState
from apps.payments.orders.refunds import (
    KEY_FORGOTTEN_AFTER,
    UNANSWERED_AFTER,
    RefundPending,
    order_apply_refund,
    order_refund,
    order_self_refund_check,
    refund_requests_finish,
)
from tests.payments.factories import OrderFactory
from tests.payments.stripe_stand_in import refused, unreachable
from tests.users.factories import UserFactory, grant

pytestmark = pytest.mark.django_db


def _made(call) -> dict:
    """Stripe's answer to a refund it made: the amount asked, one refund per request (its key)."""
    return {
        "id": f"re_for_request_{call.params['metadata']['refund_request']}",
        "object": "refund",
        "amount": call.params["amount"],
        "currency": "eur",
        "payment_intent": call.params["payment_intent"],
        "status": "succeeded",
        "metadata": call.params["metadata"],
    }


@pytest.fixture
def staff(db):
    return grant(UserFactory(is_staff=True), "payments.refund_order")


@pytest.fixture
def order(db):
    return OrderFactory(paid=True, amount_total=5000, payment_intent_id="pi_1")


def _aged(request: RefundRequest, by: timedelta) -> None:
    RefundRequest.objects.filter(pk=request.pk).update(created_at=timezone.now() - by)


class TestOrderRefund:
    def test_a_refund_is_asked_of_stripe_with_its_own_key_then_recorded(self, stripe_stand_in, order, staff):
        stripe_stand_in.always("refunds.create", _made)

        refund = order_refund(order=order, amount=1500, by=staff)

        request = RefundRequest.objects.get(order=order)
        create = stripe_stand_in.calls_to("refunds.create")[0]
        assert create.params == {
            "payment_intent": "pi_1",
            "amount": 1500,
            "reason": "requested_by_customer",
            "metadata": {"order": str(order.pk), "refund_request": str(request.pk)},
        }
        assert create.idempotency_key == request.idempotency_key == f"order:{order.pk}:refund:0:1500"
        assert (request.state, request.refund) == (RefundRequestState.SETTLED, refund)
        assert (refund.amount, refund.created_by, refund.idempotency_key) == (1500, staff, request.idempotency_key)
        order.refresh_from_db()
        assert (order.status, order.amount_refunded) == (OrderStatus.PARTIALLY_REFUNDED, 1500)

    def test_no_amount_refunds_whatever_remains(self, stripe_stand_in, order, staff):
        stripe_stand_in.always("refunds.create", _made)
        order_refund(order=order, amount=2000, by=staff)

        order_refund(order=order, amount=None, by=staff)

        assert stripe_stand_in.calls_to("refunds.create")[1].params["amount"] == 3000
        assert Order.objects.get(pk=order.pk).status == OrderStatus.REFUNDED

    def test_a_refund_stripe_refuses_fails_its_request_and_changes_nothing(self, stripe_stand_in, order, staff):
        stripe_stand_in.answer("refunds.create", refused("Charge ch_1 has been disputed."))

        with pytest.raises(StripeRefused, match="disputed"):
            order_refund(order=order, amount=1500, by=staff)

        request = RefundRequest.objects.get(order=order)
        assert request.state == RefundRequestState.FAILED
        assert "disputed" in request.last_error
        assert Order.objects.get(pk=order.pk).amount_refunded == 0

    def test_a_refused_refund_asked_again_is_checked_again_and_made(self, stripe_stand_in, order, staff):
        stripe_stand_in.answer("refunds.create", refused("Try later."), _made)
        with pytest.raises(StripeRefused):
            order_refund(order=order, amount=1500, by=staff)

        refund = order_refund(order=order, amount=1500, by=staff)

        request = RefundRequest.objects.get(order=order)
        assert (request.state, request.refund, request.last_error) == (RefundRequestState.SETTLED, refund, "")
        keys = [call.idempotency_key for call in stripe_stand_in.calls_to("refunds.create")]
        assert keys == [request.idempotency_key] * 2

    def test_a_key_stripe_remembers_for_other_parameters_fails_the_request(self, stripe_stand_in, order, staff):
        spent = stripe.IdempotencyError("Keys for idempotent requests can only be used with the same parameters")
        spent.http_status = 400
        stripe_stand_in.answer("refunds.create", spent)

        with pytest.raises(StripeKeySpent):
            order_refund(order=order, amount=1500, by=staff)

        assert RefundRequest.objects.get(order=order).state == RefundRequestState.FAILED

    def test_no_answer_from_stripe_leaves_the_request_waiting_and_the_retry_is_the_same_refund(
        self, stripe_stand_in, order, staff
    ):
        stripe_stand_in.answer("refunds.create", unreachable(), _made)

        with pytest.raises(RefundPending) as pending:
            order_refund(order=order, amount=1500, by=staff)
        waiting = RefundRequest.objects.get(order=order)
        retried = order_refund(order=order, amount=1500, by=staff)

        assert pending.value.retry_after > 0
        assert waiting.state == RefundRequestState.REQUESTED
        assert "Could not connect to Stripe" in waiting.last_error
        assert RefundRequest.objects.filter(order=order).count() == 1
        keys = {call.idempotency_key for call in stripe_stand_in.calls_to("refunds.create")}
        assert keys == {waiting.idempotency_key}
        assert Order.objects.get(pk=order.pk).amount_refunded == retried.amount == 1500

    def test_requests_still_waiting_for_stripe_count_against_what_remains(self, stripe_stand_in, order, staff):
        stripe_stand_in.answer("refunds.create", unreachable())
        with pytest.raises(RefundPending):
            order_refund(order=order, amount=3000, by=staff)

        with pytest.raises(ValidationError) as refused_field:
            order_refund(order=order, amount=2500, by=grant(UserFactory(is_staff=True), "payments.refund_order"))

        assert refused_field.value.message_dict["amount"] == ["At most 2000 (minor units) remain to be refunded."]
        assert len(stripe_stand_in.calls_to("refunds.create")) == 1

    def test_an_order_paid_without_a_recorded_intent_has_nothing_to_refund(self, stripe_stand_in, staff):
        order = OrderFactory(paid=True, payment_intent_id="")

        with pytest.raises(OrderActionRefused, match="no payment to refund"):
            order_refund(order=order, amount=None, by=staff)

        assert stripe_stand_in.calls == []

    def test_a_refund_the_webhook_recorded_first_is_credited_to_whoever_asked(self, stripe_stand_in, order, staff):
        """Stripe's event can land between its answer and our record: the refund is still recorded once."""

        def webhook_first(call):
            answer = _made(call)
            order_apply_refund(order_id=order.pk, stripe_refund_id=answer["id"], amount=1500, cause="refund.created")
            return answer

        stripe_stand_in.always("refunds.create", webhook_first)

        refund = order_refund(order=order, amount=1500, by=staff)

        assert OrderRefund.objects.filter(order=order).count() == 1
        assert (refund.created_by, refund.idempotency_key) == (staff, f"order:{order.pk}:refund:0:1500")
        assert Order.objects.get(pk=order.pk).amount_refunded == 1500


class TestClientKeys:
    def test_the_same_client_key_again_gets_the_same_refund(self, stripe_stand_in, order, staff):
        stripe_stand_in.always("refunds.create", _made)

        first = order_refund(order=order, amount=1000, by=staff, client_key="k1")
        again = order_refund(order=order, amount=1000, by=staff, client_key="k1")

        assert first == again
        assert len(stripe_stand_in.calls_to("refunds.create")) == 1
        assert stripe_stand_in.calls_to("refunds.create")[0].idempotency_key == (
            f"order:{order.pk}:refund:user:{staff.pk}:client:k1"
        )

    def test_a_client_key_used_for_another_amount_is_a_conflict(self, stripe_stand_in, order, staff):
        stripe_stand_in.always("refunds.create", _made)
        order_refund(order=order, amount=1000, by=staff, client_key="k1")

        with pytest.raises(IdempotencyConflict, match="another amount"):
            order_refund(order=order, amount=2000, by=staff, client_key="k1")

        assert Order.objects.get(pk=order.pk).amount_refunded == 1000

    def test_one_client_key_of_two_people_is_two_refunds(self, stripe_stand_in, order, staff):
        stripe_stand_in.always("refunds.create", _made)
        other = grant(UserFactory(is_staff=True), "payments.refund_order")

        order_refund(order=order, amount=1000, by=staff, client_key="k1")
        order_refund(order=order, amount=1000, by=other, client_key="k1")

        assert Order.objects.get(pk=order.pk).amount_refunded == 2000


class TestTheWorkerFinishingRequests:
    def _waiting(self, stripe_stand_in, order, staff, *, age: timedelta) -> RefundRequest:
        stripe_stand_in.answer("refunds.create", unreachable())
        with pytest.raises(RefundPending):
            order_refund(order=order, amount=1500, by=staff)
        request = RefundRequest.objects.get(order=order)
        _aged(request, age)
        stripe_stand_in.calls.clear()
        return request

    def test_a_request_left_unanswered_is_asked_again_with_its_key_and_settled(self, stripe_stand_in, order, staff):
        request = self._waiting(stripe_stand_in, order, staff, age=UNANSWERED_AFTER + timedelta(seconds=1))
        stripe_stand_in.always("refunds.create", _made)

        assert refund_requests_finish() == 1

        request.refresh_from_db()
        assert request.state == RefundRequestState.SETTLED
        assert request.refund.created_by == staff
        assert [call.idempotency_key for call in stripe_stand_in.calls] == [request.idempotency_key]

    def test_a_request_that_may_still_be_waiting_for_its_answer_is_left_to_it(self, stripe_stand_in, order, staff):
        self._waiting(stripe_stand_in, order, staff, age=timedelta(seconds=10))

        assert refund_requests_finish() == 0
        assert stripe_stand_in.calls == []

    def test_a_request_older_than_stripes_memory_of_keys_finds_its_refund_instead_of_making_another(
        self, stripe_stand_in, order, staff
    ):
        request = self._waiting(stripe_stand_in, order, staff, age=KEY_FORGOTTEN_AFTER + timedelta(minutes=1))
        made_earlier = {
            "id": "re_made",
            "object": "refund",
            "amount": 1500,
            "status": "succeeded",
            "metadata": {"order": str(order.pk), "refund_request": str(request.pk)},
        }
        someone_elses = {**made_earlier, "id": "re_other", "metadata": {"refund_request": "999999"}}
        stripe_stand_in.answer("refunds.list", [someone_elses, made_earlier])

        assert refund_requests_finish() == 1

        assert stripe_stand_in.paths == ["refunds.list"]
        assert stripe_stand_in.calls[0].params == {"payment_intent": "pi_1", "limit": 100}
        assert RefundRequest.objects.get(pk=request.pk).refund.stripe_refund_id == "re_made"

    def test_an_old_request_stripe_made_nothing_for_is_made_now(self, stripe_stand_in, order, staff):
        self._waiting(stripe_stand_in, order, staff, age=KEY_FORGOTTEN_AFTER + timedelta(minutes=1))
        stripe_stand_in.answer("refunds.list", []).always("refunds.create", _made)

        assert refund_requests_finish() == 1
        assert stripe_stand_in.paths == ["refunds.list", "refunds.create"]

    def test_a_refusal_fails_one_request_and_the_others_are_still_finished(self, stripe_stand_in, staff):
        first = OrderFactory(paid=True, payment_intent_id="pi_a")
        second = OrderFactory(paid=True, payment_intent_id="pi_b")
        refused_one = self._waiting(stripe_stand_in, first, staff, age=timedelta(minutes=3))
        finished_one = self._waiting(stripe_stand_in, second, staff, age=timedelta(minutes=2))
        disputed = refused("Charge has been disputed.")
        stripe_stand_in.always(
            "refunds.create", lambda call: disputed if call.params["payment_intent"] == "pi_a" else _made(call)
        )

        assert refund_requests_finish() == 1

        assert RefundRequest.objects.get(pk=refused_one.pk).state == RefundRequestState.FAILED
        assert RefundRequest.objects.get(pk=finished_one.pk).state == RefundRequestState.SETTLED

    def test_stripe_still_out_of_reach_leaves_the_request_for_the_next_run(self, stripe_stand_in, order, staff):
        request = self._waiting(stripe_stand_in, order, staff, age=timedelta(minutes=2))
        stripe_stand_in.always("refunds.create", unreachable())

        assert refund_requests_finish() == 0
        assert RefundRequest.objects.get(pk=request.pk).state == RefundRequestState.REQUESTED


class TestWhoMayRefund:
    def test_staff_with_the_permission_refund_any_order_at_any_time(self, staff, settings):
        settings.ORDER_SELF_REFUND_DAYS = 0
        order = OrderFactory(paid=True, paid_at=timezone.now() - timedelta(days=400))

        order_self_refund_check(order=order, by=staff)  # no refusal

    def test_staff_without_the_permission_may_not_refund_anothers_order(self):
        with pytest.raises(OrderActionRefused, match="'Can refund order' permission"):
            order_self_refund_check(order=OrderFactory(paid=True), by=UserFactory(is_staff=True))

    @pytest.mark.parametrize(("days_ago", "allowed"), [(13, True), (15, False)])
    def test_an_owner_cancels_a_paid_order_only_within_the_self_refund_window(self, settings, days_ago, allowed):
        settings.ORDER_SELF_REFUND_DAYS = 14
        order = OrderFactory(paid=True, paid_at=timezone.now() - timedelta(days=days_ago))

        if allowed:
            order_self_refund_check(order=order, by=order.user)
        else:
            with pytest.raises(OrderActionRefused, match="more than 14 days ago"):
                order_self_refund_check(order=order, by=order.user)

    def test_with_self_refunds_off_an_owner_is_sent_to_the_shop(self, settings):
        settings.ORDER_SELF_REFUND_DAYS = 0
        order = OrderFactory(paid=True)

        with pytest.raises(OrderActionRefused, match="please contact us"):
            order_self_refund_check(order=order, by=order.user)
