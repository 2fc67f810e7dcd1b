"""Mail through a real worker to a real SMTP server on loopback: once, whatever the server or the worker does."""

import os
import signal

import pytest
import stripe
from django.conf import settings
from django.db import transaction
from rest_framework.test import APIClient

from apps.mail import services
from apps.mail.models import MessageKind, MessageState, OutgoingMessage
from apps.mail.tasks import messages_send_due_task
from apps.payments.orders.models import OrderStatus
from apps.payments.webhooks.drain import replay
from apps.payments.webhooks.models import WebhookEvent
from apps.users import services as users
from tests.payments.helpers import (
    PASSWORD,
    broker_unreachable,
    checkout_started,
    order_settles,
    wait_until,
    webhooks_quiet,
)

pytestmark = pytest.mark.integration
MAIL_SLOTS = 2  # the session's mail worker (tests.celery_worker.ProductionWorkers)


def message_to(address: str, kind: str = MessageKind.WELCOME) -> OutgoingMessage:
    return OutgoingMessage.objects.get(recipient=address, kind=kind)


def settles(address: str, state: str, kind: str = MessageKind.WELCOME, timeout: float = 30) -> OutgoingMessage:
    return wait_until(
        lambda: OutgoingMessage.objects.filter(recipient=address, kind=kind, state=state).first(),
        timeout=timeout,
        message=f"the {kind} message to {address} to be {state}",
    )


def register(email: str) -> None:
    answer = APIClient().post("/api/v1/auth/register", {"email": email, "password": PASSWORD}, format="json")
    assert answer.status_code == 201, answer.content


class TestDelivery:
    def test_registering_over_http_delivers_one_welcome_in_text_and_html(self, mirror, mailbox):
        register("grace@example.com")

        message = settles("grace@example.com", MessageState.SENT)
        [received] = mailbox.messages_to("grace@example.com")
        assert received["Subject"] == "Welcome to Shop"
        assert received["From"] == settings.DEFAULT_FROM_EMAIL
        assert received["Message-ID"] == message.message_id
        text = received.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert text.strip() == message.body_text.strip()
        assert "<!DOCTYPE html>" in received.get_body(("html",)).get_content()
        assert message.attempts == 1

    def test_a_server_that_refuses_then_accepts_gets_the_message_once(self, mirror, mailbox):
        mailbox.refuse("linus@example.com", code=451, text="4.7.1 Greylisted, try again later", times=2)

        register("linus@example.com")

        message = settles("linus@example.com", MessageState.SENT)
        assert len(mailbox.messages_to("linus@example.com")) == 1
        assert mailbox.attempts_to("linus@example.com") == 3
        assert message.attempts == 3
        assert "451 4.7.1 Greylisted" in message.last_error  # what the earlier tries met, for the record

    def test_a_server_that_keeps_deferring_leaves_the_message_failed_with_its_reason(self, mirror, mailbox):
        mailbox.refuse("ken@example.com", code=421, text="4.3.2 Service not available")

        register("ken@example.com")

        message = settles("ken@example.com", MessageState.FAILED)
        assert message.attempts == 3  # MAIL_MAX_ATTEMPTS of the test worker
        assert message.last_error == "421 4.3.2 Service not available"
        assert mailbox.messages_to("ken@example.com") == []

        mailbox.reset()  # the server is fixed; the operator sends it again
        assert services.message_send_again(message=message)
        settles("ken@example.com", MessageState.SENT)
        assert len(mailbox.messages_to("ken@example.com")) == 1

    def test_a_permanent_refusal_is_not_retried(self, mirror, mailbox):
        mailbox.refuse("gone@example.com", code=550, text="5.1.1 No such user here", stage="rcpt")

        register("gone@example.com")

        message = settles("gone@example.com", MessageState.FAILED)
        assert message.attempts == 1
        assert message.last_error == "gone@example.com: 550 5.1.1 No such user here"


class TestFaults:
    def test_a_message_written_while_the_broker_is_down_is_sent_by_the_beat(self, mirror, mailbox, settings):
        with broker_unreachable():
            users.user_create(email="barbara@example.com", password=PASSWORD)
        assert message_to("barbara@example.com").state == MessageState.QUEUED

        settings.MAIL_STALE_AFTER_SECONDS = 0
        requeued = messages_send_due_task()

        assert requeued == 1
        settles("barbara@example.com", MessageState.SENT)
        assert len(mailbox.messages_to("barbara@example.com")) == 1

    def test_a_worker_killed_while_sending_loses_nothing_and_sends_once(self, mirror, mailbox, mirror_worker):
        mailbox.hold("dennis@example.com", seconds=3)

        users.user_create(email="dennis@example.com", password=PASSWORD)
        settles("dennis@example.com", MessageState.SENDING)
        for pid in mirror_worker.mail.child_pids():
            os.kill(pid, signal.SIGKILL)

        message = settles("dennis@example.com", MessageState.SENT)
        assert len(mailbox.messages_to("dennis@example.com")) == 1
        assert message.attempts == 2

    def test_a_mail_server_that_hangs_does_not_delay_a_payment(self, shop, mailbox):
        # Welcomes to a server that holds each for 4.5 s: once two are being sent, every mail slot is busy.
        slow = [f"slow{n}@example.com" for n in range(6)]
        for address in slow:
            mailbox.hold(address, seconds=4.5)
            users.user_create(email=address, password=PASSWORD)
        being_sent = OutgoingMessage.objects.filter(recipient__in=slow, state=MessageState.SENDING)
        wait_until(lambda: being_sent.count() >= MAIL_SLOTS, message="every mail slot busy")
        _, started = checkout_started(shop)

        shop["emulator"].complete_checkout(started["session_id"], "paid")
        # Sharing the mail's slots, the payment would wait for a held message to finish (4 s and more).
        order_settles(started["order"], OrderStatus.PAID, timeout=3)

        assert OutgoingMessage.objects.filter(recipient__in=slow).exclude(state=MessageState.SENT).count() >= 3
        for address in slow:
            settles(address, MessageState.SENT, timeout=60)


class TestOrderMail:
    def test_duplicated_reordered_and_replayed_events_send_one_receipt(self, shop, mailbox):
        emulator = shop["emulator"]
        emulator.control("POST", "webhooks", {"duplicate_ratio": 1.0, "shuffle": True})
        _, started = checkout_started(shop)

        emulator.complete_checkout(started["session_id"], "paid")
        order_settles(started["order"], OrderStatus.PAID)
        webhooks_quiet(emulator)
        with transaction.atomic():
            for event in WebhookEvent.objects.filter(type="checkout.session.completed"):
                replay(webhook_event=event)
        webhooks_quiet(emulator)

        receipt = settles("ada@example.com", MessageState.SENT, kind=MessageKind.RECEIPT)
        [received] = mailbox.messages_to("ada@example.com")
        assert received["Subject"] == f"Receipt for order #{started['order']}: €102.00 paid"
        text = received.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert "2 x Teapot at €45.00: €90.00" in text
        assert "1 x Cup at €12.00: €12.00" in text
        assert OutgoingMessage.objects.filter(kind=MessageKind.RECEIPT).count() == 1
        assert receipt.attempts == 1

    def test_a_decline_mails_a_link_to_try_again_and_the_second_try_a_receipt(self, shop, mailbox):
        emulator = shop["emulator"]
        _, started = checkout_started(shop)

        emulator.complete_checkout(started["session_id"], "declined")
        failed = settles("ada@example.com", MessageState.SENT, kind=MessageKind.PAYMENT_FAILED)
        emulator.complete_checkout(started["session_id"], "paid")
        settles("ada@example.com", MessageState.SENT, kind=MessageKind.RECEIPT)
        webhooks_quiet(emulator)

        assert started["url"] in failed.body_text
        subjects = sorted(message["Subject"] for message in mailbox.messages_to("ada@example.com"))
        assert subjects == [
            f"Payment for order #{started['order']} did not go through",
            f"Receipt for order #{started['order']}: €102.00 paid",
        ]

    def test_a_refund_in_the_dashboard_and_a_cancel_each_mail_once(self, shop, mailbox):
        emulator = shop["emulator"]
        client, paid = checkout_started(shop)
        emulator.complete_checkout(paid["session_id"], "paid")
        order = order_settles(paid["order"], OrderStatus.PAID)
        _, pending = checkout_started(shop, quantity=1)

        stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url}).v1.refunds.create(
            params={"payment_intent": order.payment_intent_id, "amount": 1200}
        )
        client.post(f"/api/v1/orders/{pending['order']}/cancel")
        refund = settles("ada@example.com", MessageState.SENT, kind=MessageKind.REFUND)
        settles("ada@example.com", MessageState.SENT, kind=MessageKind.ORDER_CANCELED)
        webhooks_quiet(emulator)

        assert "Refunded so far: €12.00 of €102.00; €90.00 remains paid." in refund.body_text
        subjects = sorted(message["Subject"] for message in mailbox.messages_to("ada@example.com"))
        assert subjects == [
            f"Order #{pending['order']} canceled",
            f"Receipt for order #{paid['order']}: €102.00 paid",
            f"Refund of €12.00 for order #{paid['order']}",
        ]
