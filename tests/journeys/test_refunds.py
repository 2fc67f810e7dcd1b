"""Refunds asked for here: written down before Stripe is asked, settled once whatever dies in between."""

import os
import signal
import threading
from datetime import timedelta

import pytest
import requests
import stripe
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from apps.payments.gateway.errors import StripeRefused
from apps.payments.orders.idempotency import IdempotencyConflict
from apps.payments.orders.models import OrderRefund, OrderStatus, RefundRequest, RefundRequestState
from apps.payments.orders.refunds import KEY_FORGOTTEN_AFTER, UNANSWERED_AFTER, order_refund, refund_requests_finish
from apps.payments.orders.tasks import refund_requests_finish_task
from config.celery import app as celery_app
from tests.payments.factories import OrderFactory
from tests.payments.helpers import paid_by_checkout, wait_until, webhooks_quiet
from tests.users.factories import operator
from tests.web_process import WebProcess
from tests.worker_fixtures import worker_environment


def test_a_refund_whose_web_worker_dies_between_stripe_and_the_record_is_settled_once(shop, smtp_sink):
    emulator = shop["emulator"]
    order = paid_by_checkout(shop)
    stripe_client = stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url})
    # Stripe makes the refund at once and answers five seconds later: the process asking dies meanwhile.
    emulator.add_fault(latency_ms=5000, count=1, path_prefix="/v1/refunds", method="POST", phase="answer")
    web = WebProcess(worker_environment(emulator, smtp_sink)).start()
    asked = []
    try:
        staff_token = AccessToken.for_user(shop["staff"])

        def ask() -> None:
            try:
                requests.post(
                    f"{web.url}/api/v1/orders/{order.pk}/refunds",
                    json={"amount": 2000},
                    headers={"Authorization": f"Bearer {staff_token}"},
                    timeout=30,
                )
            except requests.RequestException as error:  # the connection dies with the process
                asked.append(error)

        asking = threading.Thread(target=ask)
        asking.start()
        wait_until(
            lambda: stripe_client.v1.refunds.list(params={"payment_intent": order.payment_intent_id}).data,
            message="Stripe to make the refund",
        )
        for pid in web.worker_pids():
            os.kill(pid, signal.SIGKILL)
        asking.join(timeout=30)
    finally:
        web.stop()

    assert asked, "the client saw its request die"
    request = RefundRequest.objects.get(order=order)
    assert (request.state, request.amount) == (RefundRequestState.REQUESTED, 2000)  # asked, never recorded
    # Stripe's own event may record the refund first; the worker finishes the request with the same key.
    RefundRequest.objects.filter(pk=request.pk).update(created_at=timezone.now() - UNANSWERED_AFTER * 2)
    celery_app.send_task(refund_requests_finish_task.name)
    wait_until(
        lambda: RefundRequest.objects.filter(pk=request.pk, state=RefundRequestState.SETTLED).exists(),
        message="the worker to finish the refund",
    )
    celery_app.send_task(refund_requests_finish_task.name)  # again: nothing more to do
    webhooks_quiet(emulator)

    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == (OrderStatus.PARTIALLY_REFUNDED, 2000)
    assert OrderRefund.objects.filter(order=order).count() == 1
    assert RefundRequest.objects.get(pk=request.pk).refund == OrderRefund.objects.get(order=order)
    assert len(stripe_client.v1.refunds.list(params={"payment_intent": order.payment_intent_id}).data) == 1


@pytest.fixture
def paid_in_stripe(mirror_on):
    """An order Stripe took 5,000 eur for (a real intent in the emulator), with no worker about."""
    client = stripe.StripeClient(mirror_on.api_key, base_addresses={"api": mirror_on.url})
    intent = client.v1.payment_intents.create(params={"amount": 5000, "currency": "eur"})
    client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})
    return OrderFactory(paid=True, payment_intent_id=intent.id), client


@pytest.mark.django_db
class TestFinishingLostAnswers:
    def _request(self, order, *, age) -> RefundRequest:
        request = RefundRequest.objects.create(
            order=order, amount=1500, reason="requested_by_customer", idempotency_key=f"order:{order.pk}:lost"
        )
        RefundRequest.objects.filter(pk=request.pk).update(created_at=timezone.now() - age)
        return RefundRequest.objects.get(pk=request.pk)

    def test_a_request_left_unanswered_is_asked_again_with_its_key_and_settled_once(self, paid_in_stripe):
        order, client = paid_in_stripe
        request = self._request(order, age=UNANSWERED_AFTER * 2)
        recent = self._request(OrderFactory(paid=True), age=UNANSWERED_AFTER / 2)  # perhaps still being answered

        assert refund_requests_finish() == 1
        assert refund_requests_finish() == 0

        request.refresh_from_db()
        assert (request.state, request.refund.amount) == (RefundRequestState.SETTLED, 1500)
        assert RefundRequest.objects.get(pk=recent.pk).state == RefundRequestState.REQUESTED
        assert len(client.v1.refunds.list(params={"payment_intent": order.payment_intent_id}).data) == 1
        order.refresh_from_db()
        assert (order.status, order.amount_refunded) == (OrderStatus.PARTIALLY_REFUNDED, 1500)

    def test_a_request_older_than_stripes_memory_of_keys_finds_its_refund_instead_of_making_another(
        self, paid_in_stripe
    ):
        order, client = paid_in_stripe
        request = self._request(order, age=KEY_FORGOTTEN_AFTER + UNANSWERED_AFTER)
        made = client.v1.refunds.create(
            params={
                "payment_intent": order.payment_intent_id,
                "amount": 1500,
                "metadata": {"order": str(order.pk), "refund_request": str(request.pk)},
            }
        )

        assert refund_requests_finish() == 1

        assert RefundRequest.objects.get(pk=request.pk).refund.stripe_refund_id == made.id
        assert [refund.id for refund in client.v1.refunds.list().data] == [made.id]

    def test_a_refund_stripe_refuses_fails_its_request_and_is_not_asked_again(self, paid_in_stripe):
        order, client = paid_in_stripe
        request = RefundRequest.objects.create(
            order=order, amount=999_999, reason="requested_by_customer", idempotency_key=f"order:{order.pk}:too-much"
        )
        RefundRequest.objects.filter(pk=request.pk).update(created_at=timezone.now() - UNANSWERED_AFTER * 2)

        assert refund_requests_finish() == 0

        request.refresh_from_db()
        assert request.state == RefundRequestState.FAILED
        assert request.last_error
        assert client.v1.refunds.list().data == []


@pytest.mark.django_db(transaction=True)
def test_two_staff_refunding_at_once_never_take_back_more_than_stripe_took(paid_in_stripe, mirror_on):
    """The first refund is still waiting for Stripe when the second is asked: no lock is held across the call,
    yet the first counts against what remains, so the second is refused rather than over-refunding."""
    order, client = paid_in_stripe
    mirror_on.add_fault(latency_ms=1500, count=1, path_prefix="/v1/refunds", method="POST")
    outcomes = {}

    def refund(name: str, amount: int) -> None:
        try:
            outcomes[name] = order_refund(order=order, amount=amount, by=operator(email=f"{name}@example.com")).amount
        except ValidationError as refused:
            outcomes[name] = refused.message_dict
        finally:
            connection.close()

    first = threading.Thread(target=refund, args=("first", 3000))
    first.start()
    wait_until(lambda: RefundRequest.objects.filter(order=order).exists(), message="the first refund asked")
    refund("second", 2500)  # the same amount at the same moment would be the same refund (one key)
    first.join(30)

    assert outcomes["first"] == 3000
    assert outcomes["second"] == {"amount": ["At most 2000 (minor units) remain to be refunded."]}
    assert len(client.v1.refunds.list(params={"payment_intent": order.payment_intent_id}).data) == 1
    order.refresh_from_db()
    assert (order.amount_refunded, order.status) == (3000, OrderStatus.PARTIALLY_REFUNDED)


@pytest.mark.django_db
class TestAskingAgain:
    def test_asking_again_while_stripe_has_not_answered_is_the_same_refund_whatever_its_age(self, paid_in_stripe):
        """A staff member whose refund was answered 503 (Stripe made it, the answer was lost) asks again minutes
        later: the request still waiting is the one asked, with its key, and Stripe gives back its refund."""
        order, client = paid_in_stripe
        staff = operator(email="patient@example.com")
        lost = RefundRequest.objects.create(
            order=order, amount=1500, amount_asked=1500, reason="requested_by_customer", created_by=staff,
            idempotency_key=f"order:{order.pk}:refund:0:1500",
        )  # fmt: skip
        made = client.v1.refunds.create(
            params={"payment_intent": order.payment_intent_id, "amount": 1500, "reason": "requested_by_customer",
                    "metadata": {"order": str(order.pk), "refund_request": str(lost.pk)}},
            options={"idempotency_key": lost.idempotency_key},
        )  # fmt: skip
        RefundRequest.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(minutes=5))

        again = order_refund(order=order, amount=1500, by=staff)

        assert again.stripe_refund_id == made.id
        assert len(client.v1.refunds.list(params={"payment_intent": order.payment_intent_id}).data) == 1
        assert RefundRequest.objects.get(pk=lost.pk).state == RefundRequestState.SETTLED

    def test_a_client_key_reused_for_another_amount_is_a_conflict_even_after_a_5xx(self, paid_in_stripe):
        order, _ = paid_in_stripe
        staff = operator(email="keyed@example.com")
        RefundRequest.objects.create(
            order=order, amount=1500, amount_asked=1500, reason="requested_by_customer", created_by=staff,
            client_key="k-1", idempotency_key=f"order:{order.pk}:refund:user:{staff.pk}:client:k-1",
        )  # fmt: skip

        with pytest.raises(IdempotencyConflict):
            order_refund(order=order, amount=900, by=staff, client_key="k-1")

    def test_a_refused_refund_asked_again_is_checked_again_and_made(self, paid_in_stripe, mirror_on):
        order, client = paid_in_stripe
        staff = operator(email="again@example.com")
        mirror_on.add_fault(status=400, count=1, message="Try later", path_prefix="/v1/refunds", method="POST")

        with pytest.raises(StripeRefused):
            order_refund(order=order, amount=1500, by=staff)
        made = order_refund(order=order, amount=1500, by=staff)

        assert made.amount == 1500
        assert RefundRequest.objects.get(order=order).state == RefundRequestState.SETTLED
        assert len(client.v1.refunds.list(params={"payment_intent": order.payment_intent_id}).data) == 1
