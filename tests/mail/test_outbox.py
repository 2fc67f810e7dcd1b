"""The outbox row: written once per cause, in the cause's transaction; sent once; sent again on request."""

import threading

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from apps.mail import services
from apps.mail.models import MessageKind, MessageState, OutgoingMessage
from apps.payments.orders.lifecycle import order_create, order_transition
from apps.payments.orders.models import Order, OrderStatus
from apps.payments.signals import order_paid
from tests.mail.helpers import paid_order


@pytest.mark.django_db
class TestWrittenOnce:
    def test_a_duplicated_signal_writes_and_queues_one_message(
        self, customer, cart, django_capture_on_commit_callbacks
    ):
        order = order_create(user=customer, lines=cart)
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.PAID)

        with django_capture_on_commit_callbacks() as first:
            order_paid.send(sender=Order, order_id=order.pk)
        with django_capture_on_commit_callbacks() as second:
            order_paid.send(sender=Order, order_id=order.pk)

        assert OutgoingMessage.objects.filter(kind=MessageKind.RECEIPT).count() == 1
        assert (len(first), len(second)) == (1, 0)

    def test_a_transition_applied_twice_mails_once(self, customer, cart):
        order = paid_order(user=customer, lines=cart)

        again = order_transition(order_id=order.pk, to=OrderStatus.PAID, cause="replayed event")

        assert again is False
        assert OutgoingMessage.objects.filter(idempotency_key=f"receipt:order:{order.pk}").count() == 1

    def test_a_rolled_back_cause_leaves_no_message(self, customer, cart):
        order = order_create(user=customer, lines=cart)

        def pay_then_fail() -> None:
            with transaction.atomic():
                order_transition(order_id=order.pk, to=OrderStatus.PAID, cause="test")
                raise RuntimeError("the webhook handler failed after the transition")

        with pytest.raises(RuntimeError):
            pay_then_fail()

        assert not OutgoingMessage.objects.exists()
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING

    def test_a_guest_address_mail_cannot_reach_is_kept_as_failed_and_never_tried(
        self, cart, django_capture_on_commit_callbacks
    ):
        order = order_create(user=None, lines=cart, email="guest@shop.invalid")

        with django_capture_on_commit_callbacks() as callbacks:
            order_transition(order_id=order.pk, to=OrderStatus.PAID, cause="test")

        message = OutgoingMessage.objects.get()
        assert (message.state, message.attempts) == (MessageState.FAILED, 0)
        assert (
            message.last_error
            == "address refused: We cannot send mail to this address: .invalid domains receive no mail."
        )
        assert callbacks == []

    def test_an_order_without_any_address_is_kept_as_failed(self, cart):
        order = order_create(user=None, lines=cart, email="")

        order_transition(order_id=order.pk, to=OrderStatus.PAID, cause="test")

        assert OutgoingMessage.objects.get().last_error == "no address to send to"


@pytest.mark.django_db(transaction=True)
def test_the_same_signal_in_two_concurrent_transactions_writes_one_message(customer, cart):
    order = order_create(user=customer, lines=cart)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.PAID)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def send() -> None:
        try:
            start.wait()
            with transaction.atomic():
                order_paid.send(sender=Order, order_id=order.pk)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert OutgoingMessage.objects.count() == 1


@pytest.mark.django_db
class TestSending:
    """`message_send` in this process, through Django's in-memory backend (the test settings' EMAIL_BACKEND)."""

    def test_sends_text_and_html_once_with_a_stable_message_id(self, customer, cart):
        paid_order(user=customer, lines=cart)
        message = OutgoingMessage.objects.get()

        first = services.message_send(message_id=message.pk, owner="task:a")
        second = services.message_send(message_id=message.pk, owner="task:b")

        assert (first, second) == ("sent", "skipped")
        [sent] = mail.outbox
        assert sent.to == ["ada@example.com"]
        assert sent.subject == message.subject
        assert sent.body == message.body_text
        assert sent.alternatives[0] == (message.body_html, "text/html")
        assert sent.extra_headers["Message-ID"] == message.message_id
        message.refresh_from_db()
        assert (message.state, message.attempts, message.lease_owner) == (MessageState.SENT, 1, "")
        assert message.sent_at is not None

    def test_a_row_another_worker_is_sending_is_left_alone_until_its_lease_runs_out(self, customer, cart):
        paid_order(user=customer, lines=cart)
        message = OutgoingMessage.objects.get()
        later = timezone.now() + timezone.timedelta(minutes=2)
        OutgoingMessage.objects.filter(pk=message.pk).update(
            state=MessageState.SENDING, lease_owner="task:other", lease_until=later
        )

        while_held = services.message_send(message_id=message.pk, owner="task:mine")
        OutgoingMessage.objects.filter(pk=message.pk).update(lease_until=timezone.now() - timezone.timedelta(seconds=1))
        after_expiry = services.message_send(message_id=message.pk, owner="task:mine")

        assert (while_held, after_expiry) == ("skipped", "sent")
        assert len(mail.outbox) == 1

    def test_send_again_requeues_a_failed_message_with_fresh_attempts(
        self, customer, cart, django_capture_on_commit_callbacks
    ):
        paid_order(user=customer, lines=cart)
        message = OutgoingMessage.objects.get()
        OutgoingMessage.objects.filter(pk=message.pk).update(state=MessageState.FAILED, attempts=3, last_error="451")

        with django_capture_on_commit_callbacks() as callbacks:
            again = services.message_send_again(message=message)
        not_failed = services.message_send_again(message=message)

        message.refresh_from_db()
        assert (again, not_failed) == (True, False)
        assert (message.state, message.attempts) == (MessageState.QUEUED, 0)
        assert len(callbacks) == 1


@pytest.mark.django_db
def test_the_admin_lists_previews_and_sends_again(customer, cart, admin_client):
    paid_order(user=customer, lines=cart)
    message = OutgoingMessage.objects.get()
    OutgoingMessage.objects.filter(pk=message.pk).update(state=MessageState.FAILED, last_error="550 5.1.1 No such user")

    listing = admin_client.get("/admin/mail/outgoingmessage/", {"state__exact": "failed"})
    page = admin_client.get(f"/admin/mail/outgoingmessage/{message.pk}/change/")
    action = admin_client.post(
        "/admin/mail/outgoingmessage/", {"action": "send_again", "_selected_action": [message.pk]}, follow=True
    )

    assert listing.status_code == 200
    assert "550 5.1.1 No such user" in listing.content.decode()
    assert page.status_code == 200
    assert "<iframe sandbox srcdoc=" in page.content.decode()
    assert "Queued 1 message(s)" in action.content.decode()
    assert OutgoingMessage.objects.get(pk=message.pk).state == MessageState.QUEUED


def test_the_deploy_check_warns_when_mail_would_not_leave_the_machine(settings):
    from apps.mail.checks import check_mail_leaves_the_machine

    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    console = check_mail_leaves_the_machine(None)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    smtp = check_mail_leaves_the_machine(None)

    assert [warning.id for warning in console] == ["mail.W001"]
    assert "printed to the console" in console[0].msg
    assert smtp == []


@pytest.mark.django_db
def test_the_outbox_command_counts_lists_and_sends_failed_messages_again(customer, cart):
    from io import StringIO

    from django.core.management import call_command

    paid_order(user=customer, lines=cart)
    receipt = OutgoingMessage.objects.get()
    OutgoingMessage.objects.filter(pk=receipt.pk).update(state=MessageState.FAILED, last_error="421 4.3.2 Busy")
    counts, listed = StringIO(), StringIO()

    call_command("mail_outbox", stdout=counts)
    call_command("mail_outbox", "--failed", "--send-again", stdout=listed)

    assert counts.getvalue().splitlines() == ["queued=0  sending=0  sent=0  failed=1"]
    assert receipt.idempotency_key in listed.getvalue()
    assert "421 4.3.2 Busy" in listed.getvalue()
    assert "Queued 1 failed message(s)" in listed.getvalue()
    assert OutgoingMessage.objects.get().state == MessageState.QUEUED
