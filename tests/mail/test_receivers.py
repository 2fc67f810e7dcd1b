"""Mail's receivers called as their signals call them: a message per cause, and nothing (no error either) for a
cause that is gone by the time the receiver runs, so the sender's transaction is never failed by mail."""

import pytest
from django.conf import settings

from apps.mail import receivers
from apps.mail.models import MessageKind, OutgoingMessage
from apps.payments import signals as payment_signals
from apps.payments.billing.selectors import SubscriptionNews
from apps.payments.orders.lifecycle import order_create, order_transition
from apps.payments.orders.models import Order, OrderStatus
from apps.payments.orders.refunds import order_apply_refund
from tests.mail.helpers import paid_order

pytestmark = pytest.mark.django_db
GONE = 987_654


def news_of(user, **changes) -> SubscriptionNews:
    fields = {
        "subscription_id": "sub_1",
        "user": user,
        "plan_names": ["Pro"],
        "status": "active",
        "currency": "eur",
        "amount": 1500,
        "current_period_end": 1_767_268_800,
        "trial_end": 1_767_268_800,
        "invoice_id": "in_1",
    }
    return SubscriptionNews(**{**fields, **changes})


def test_a_user_deleted_before_the_receiver_runs_gets_no_message():
    receivers.mail_welcome(sender=None, user_id=GONE)
    receivers.mail_verification(sender=None, user_id=GONE, request_id="r1")

    assert not OutgoingMessage.objects.exists()


def test_each_verification_request_is_one_message_to_the_current_address(customer):
    receivers.mail_verification(sender=None, user_id=customer.pk, request_id="r1")
    receivers.mail_verification(sender=None, user_id=customer.pk, request_id="r1")  # the same request, delivered twice
    receivers.mail_verification(sender=None, user_id=customer.pk, request_id="r2")

    messages = OutgoingMessage.objects.filter(kind=MessageKind.VERIFY_EMAIL)
    assert messages.count() == 2
    assert set(messages.values_list("recipient", flat=True)) == {customer.email}


@pytest.mark.parametrize(
    "receiver", [receivers.mail_receipt, receivers.mail_payment_failed, receivers.mail_order_canceled]
)
def test_an_order_that_is_gone_gets_no_message(receiver):
    receiver(sender=Order, order_id=GONE)

    assert not OutgoingMessage.objects.exists()


def test_a_refund_is_mailed_only_for_the_order_it_belongs_to(customer, cart):
    refunded = paid_order(user=customer, lines=cart)
    other = paid_order(user=customer, lines=cart)
    order_apply_refund(order_id=refunded.pk, stripe_refund_id="re_1", amount=100, cause="test")
    refund = refunded.refunds.get()
    OutgoingMessage.objects.filter(kind=MessageKind.REFUND).delete()

    receivers.mail_refund(sender=Order, order_id=other.pk, refund_id=refund.pk)
    receivers.mail_refund(sender=Order, order_id=refunded.pk, refund_id=GONE)

    assert not OutgoingMessage.objects.filter(kind=MessageKind.REFUND).exists()


def test_a_failed_payment_without_an_open_checkout_sends_the_customer_to_the_shop(customer, cart):
    order = order_create(user=customer, lines=cart)  # no Checkout Session to go back to

    order_transition(order_id=order.pk, to=OrderStatus.FAILED, cause="test")

    message = OutgoingMessage.objects.get(kind=MessageKind.PAYMENT_FAILED)
    assert settings.SITE_URL in message.body_text
    assert "checkout.stripe.com" not in message.body_text


def test_a_subscription_starts_once_but_renews_once_per_invoice(customer):
    for invoice in ("in_1", "in_2"):
        news = news_of(customer, invoice_id=invoice)
        receivers.mail_subscription(sender=None, signal=payment_signals.subscription_started, news=news)
        receivers.mail_subscription(sender=None, signal=payment_signals.subscription_renewed, news=news)

    assert OutgoingMessage.objects.filter(kind=MessageKind.SUBSCRIPTION_STARTED).count() == 1
    assert OutgoingMessage.objects.filter(kind=MessageKind.SUBSCRIPTION_RENEWED).count() == 2


def test_a_trial_moved_to_another_end_is_reminded_again(customer):
    for trial_end in (1_767_268_800, 1_767_268_800, 1_768_000_000):
        receivers.mail_subscription(
            sender=None, signal=payment_signals.subscription_trial_ending, news=news_of(customer, trial_end=trial_end)
        )

    assert OutgoingMessage.objects.filter(kind=MessageKind.SUBSCRIPTION_TRIAL_ENDING).count() == 2
