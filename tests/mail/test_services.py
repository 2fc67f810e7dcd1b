"""The outbox's services on their own: writing a row, sending it through a mail server that accepts, defers or
refuses, sending again, and picking up what no task is sending."""

import smtplib
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core import mail
from django.core.mail.backends import locmem
from django.utils import timezone

from apps.mail import services
from apps.mail.models import MessageKind, MessageState, OutgoingMessage
from apps.mail.rendering import message_render
from config.celery import app as celery_app
from tests.mail.helpers import outgoing

pytestmark = pytest.mark.django_db

SEND_TASK = "apps.mail.tasks.message_send_task"
WELCOME = {"user": SimpleNamespace(name="Ada", email="ada@example.com"), "verify_url": "https://shop.example/v/1"}


@pytest.fixture
def published(monkeypatch) -> list[tuple]:
    """What is published to the broker during the test, as (task name, args, countdown): nothing goes out."""
    sent: list[tuple] = []

    def send_task(name, args=None, kwargs=None, countdown=None, **options):
        sent.append((name, tuple(args or ()), countdown))

    monkeypatch.setattr(celery_app, "send_task", send_task)
    return sent


class MailServer:
    """Answers each send with the next refusal given, then accepts (into Django's `mail.outbox`)."""

    def __init__(self):
        self.refusals: list[Exception] = []

    def refuse(self, *errors: Exception) -> None:
        self.refusals.extend(errors)


@pytest.fixture
def mail_server(monkeypatch) -> MailServer:
    server = MailServer()
    accept = locmem.EmailBackend.send_messages

    def send_messages(backend, messages):
        if server.refusals:
            raise server.refusals.pop(0)
        return accept(backend, messages)

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", send_messages)
    return server


@pytest.fixture
def retries(settings):
    """Short, round numbers for the retry schedule, so each test reads its own expectations."""
    settings.MAIL_RETRY_BASE_SECONDS = 10.0
    settings.MAIL_RETRY_MAX_SECONDS = 25.0
    settings.MAIL_MAX_ATTEMPTS = 5
    return settings


def queue_welcome(key: str = "welcome:user:1", recipient: str = "ada@example.com", context=None) -> OutgoingMessage:
    return services.message_queue(key=key, kind=MessageKind.WELCOME, recipient=recipient, context=context or WELCOME)


class TestMessageQueue:
    def test_writes_the_rendered_message_and_publishes_its_send_task_only_after_commit(
        self, published, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            message = queue_welcome()
            assert published == []  # the caller's transaction has not committed yet

        rendered = message_render(kind=MessageKind.WELCOME, context=WELCOME)
        message.refresh_from_db()
        assert (message.subject, message.body_text, message.body_html) == (
            rendered.subject,
            rendered.text,
            rendered.html,
        )
        assert (message.state, message.attempts, message.last_error) == (MessageState.QUEUED, 0, "")
        assert published == [(SEND_TASK, (message.pk,), None)]

    def test_the_same_key_again_returns_the_first_row_unchanged_and_publishes_nothing_more(
        self, published, django_capture_on_commit_callbacks
    ):
        first = queue_welcome()
        later = {"user": SimpleNamespace(name="Grace", email="grace@example.com"), "verify_url": "https://x.example"}

        with django_capture_on_commit_callbacks(execute=True):
            again = queue_welcome(recipient="grace@example.com", context=later)

        assert again.pk == first.pk
        assert OutgoingMessage.objects.get().recipient == "ada@example.com"
        assert "Grace" not in OutgoingMessage.objects.get().body_text
        assert published == []

    def test_each_message_gets_its_own_message_id_in_the_senders_domain(self, settings):
        settings.DEFAULT_FROM_EMAIL = "Tea House <orders@tea.example.org>"

        ids = {queue_welcome(key=f"welcome:user:{n}").message_id for n in range(3)}

        assert len(ids) == 3
        assert all(message_id.endswith("@tea.example.org>") for message_id in ids)

    @pytest.mark.parametrize(
        ("recipient", "reason"),
        [
            ("ada@localhost", "the domain needs a dot"),
            ("ada@[192.0.2.1]", "not an IP address"),
            ("not an address", "valid email address"),
        ],
    )
    def test_an_address_mail_cannot_reach_is_kept_as_failed_and_never_published(
        self, recipient, reason, published, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            message = queue_welcome(recipient=recipient)

        message.refresh_from_db()
        assert (message.state, message.attempts) == (MessageState.FAILED, 0)
        assert message.last_error.startswith("address refused: ")
        assert reason in message.last_error
        assert message.body_text.strip()  # kept whole, for an operator to read and send again
        assert published == []


class TestMessageSend:
    def test_an_unknown_message_is_skipped(self):
        assert services.message_send(message_id=987654, owner="task:a") == "skipped"
        assert mail.outbox == []

    @pytest.mark.parametrize("state", [MessageState.SENT, MessageState.FAILED])
    def test_a_message_already_final_is_skipped_and_its_attempts_not_counted(self, state):
        message = outgoing(state=state, attempts=2)

        assert services.message_send(message_id=message.pk, owner="task:a") == "skipped"

        message.refresh_from_db()
        assert (message.state, message.attempts) == (state, 2)
        assert mail.outbox == []

    def test_a_redelivered_task_takes_over_its_own_row_before_the_lease_runs_out(self):
        # Its worker was killed mid-send; the broker hands the same task (same id) to another worker.
        message = outgoing(
            state=MessageState.SENDING,
            attempts=1,
            lease_owner="task:abc",
            lease_until=timezone.now() + timedelta(minutes=2),
        )

        assert services.message_send(message_id=message.pk, owner="task:abc") == "sent"

        message.refresh_from_db()
        assert (message.state, message.attempts) == (MessageState.SENT, 2)
        assert len(mail.outbox) == 1

    @pytest.mark.parametrize(
        "error",
        [smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), smtplib.SMTPResponseException(550, b"No")],
        ids=["temporary", "permanent"],
    )
    def test_a_sender_overtaken_while_it_hung_leaves_the_message_as_the_other_one_sent_it(
        self, monkeypatch, retries, error
    ):
        message = outgoing()

        def hang_then_fail(row):
            # Meanwhile its lease ran out, and another sender claimed the message and sent it.
            OutgoingMessage.objects.filter(pk=row.pk).update(
                state=MessageState.SENT, lease_owner="", lease_until=None, sent_at=timezone.now()
            )
            raise error

        monkeypatch.setattr(services, "_deliver", hang_then_fail)

        assert services.message_send(message_id=message.pk, owner="task:slow") == "skipped"

        message.refresh_from_db()
        assert (message.state, message.last_error) == (MessageState.SENT, "")

    def test_a_temporary_refusal_queues_the_row_again_and_asks_for_a_retry_later(self, mail_server, retries):
        message = outgoing()
        mail_server.refuse(smtplib.SMTPResponseException(451, b"4.7.1 Greylisted, try again later"))
        before = timezone.now()

        with pytest.raises(services.SendDeferred) as deferred:
            services.message_send(message_id=message.pk, owner="task:a")

        message.refresh_from_db()
        assert deferred.value.delay == 10.0
        assert (message.state, message.attempts) == (MessageState.QUEUED, 1)
        assert message.last_error == "451 4.7.1 Greylisted, try again later"
        assert (message.lease_owner, message.lease_until) == ("", None)
        assert before + timedelta(seconds=10) <= message.next_attempt_at <= timezone.now() + timedelta(seconds=10)
        assert mail.outbox == []

    def test_the_wait_between_tries_doubles_up_to_its_ceiling(self, mail_server, retries):
        message = outgoing()
        mail_server.refuse(*[smtplib.SMTPResponseException(421, b"4.3.2 Busy") for _ in range(3)])

        delays = []
        for _ in range(3):
            with pytest.raises(services.SendDeferred) as deferred:
                services.message_send(message_id=message.pk, owner="task:a")
            delays.append(deferred.value.delay)

        assert delays == [10.0, 20.0, 25.0]

    def test_a_temporary_refusal_on_the_last_attempt_leaves_the_message_failed(self, mail_server, retries):
        retries.MAIL_MAX_ATTEMPTS = 2
        message = outgoing(attempts=1)
        mail_server.refuse(smtplib.SMTPResponseException(421, b"4.3.2 Service not available"))

        outcome = services.message_send(message_id=message.pk, owner="task:a")

        message.refresh_from_db()
        assert outcome == "failed"
        assert (message.state, message.attempts) == (MessageState.FAILED, 2)
        assert message.last_error == "421 4.3.2 Service not available"
        assert (message.lease_owner, message.lease_until) == ("", None)

    @pytest.mark.parametrize(
        ("error", "reason"),
        [
            (smtplib.SMTPDataError(554, b"5.7.1 Message rejected as spam"), "554 5.7.1 Message rejected as spam"),
            (
                smtplib.SMTPRecipientsRefused({"ada@example.com": (550, b"5.1.1 No such user")}),
                "ada@example.com: 550 5.1.1 No such user",
            ),
            (smtplib.SMTPSenderRefused(553, b"5.7.1 Sender not allowed", "shop@example.com"), "553 5.7.1 Sender"),
            (ValueError("Invalid address"), "ValueError: Invalid address"),
        ],
        ids=["5xx-reply", "recipient-refused", "sender-refused", "unwritable-address"],
    )
    def test_a_permanent_refusal_fails_the_message_at_the_first_attempt_with_the_servers_reason(
        self, mail_server, retries, error, reason
    ):
        message = outgoing()
        mail_server.refuse(error)

        outcome = services.message_send(message_id=message.pk, owner="task:a")

        message.refresh_from_db()
        assert outcome == "failed"
        assert (message.state, message.attempts) == (MessageState.FAILED, 1)
        assert message.last_error.startswith(reason)

    @pytest.mark.parametrize(
        ("error", "reason"),
        [
            (
                smtplib.SMTPRecipientsRefused({"ada@example.com": (450, b"4.2.1 Mailbox busy")}),
                "ada@example.com: 450 4.2.1 Mailbox busy",
            ),
            (
                smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
                "SMTPServerDisconnected: Connection unexpectedly closed",
            ),
            (
                ConnectionRefusedError(111, "Connection refused"),
                "ConnectionRefusedError: [Errno 111] Connection refused",
            ),
            (TimeoutError("timed out"), "TimeoutError: timed out"),
        ],
        ids=["recipient-deferred", "dropped-connection", "server-down", "timeout"],
    )
    def test_a_refusal_that_may_pass_later_is_retried(self, mail_server, retries, error, reason):
        message = outgoing()
        mail_server.refuse(error)

        with pytest.raises(services.SendDeferred):
            services.message_send(message_id=message.pk, owner="task:a")

        message.refresh_from_db()
        assert message.state == MessageState.QUEUED
        assert message.last_error == reason

    def test_a_message_deferred_then_accepted_is_sent_once_and_keeps_the_earlier_reason(self, mail_server, retries):
        message = outgoing()
        mail_server.refuse(smtplib.SMTPResponseException(451, b"4.7.1 Greylisted"))

        with pytest.raises(services.SendDeferred):
            services.message_send(message_id=message.pk, owner="task:a")
        outcome = services.message_send(message_id=message.pk, owner="task:a")

        message.refresh_from_db()
        assert outcome == "sent"
        assert (message.state, message.attempts) == (MessageState.SENT, 2)
        assert message.last_error == "451 4.7.1 Greylisted"  # what the earlier try met, for the record
        assert len(mail.outbox) == 1

    def test_a_long_error_is_cut_to_fit_the_admin(self, mail_server, retries):
        message = outgoing()
        mail_server.refuse(OSError("x" * 10_000))

        with pytest.raises(services.SendDeferred):
            services.message_send(message_id=message.pk, owner="task:a")

        message.refresh_from_db()
        assert message.last_error.startswith("OSError: xxx")
        assert len(message.last_error) == 2000


class TestMessageSendAgain:
    def test_a_sent_message_is_not_sent_again(self, published, django_capture_on_commit_callbacks):
        message = outgoing(state=MessageState.SENT, attempts=1)

        with django_capture_on_commit_callbacks(execute=True):
            again = services.message_send_again(message=message)

        message.refresh_from_db()
        assert again is False
        assert (message.state, message.attempts) == (MessageState.SENT, 1)
        assert published == []

    def test_a_message_sent_again_is_published_after_commit_and_has_every_attempt_back(
        self, published, mail_server, retries, django_capture_on_commit_callbacks
    ):
        retries.MAIL_MAX_ATTEMPTS = 2
        message = outgoing(state=MessageState.FAILED, attempts=2, last_error="421 4.3.2 Busy")

        with django_capture_on_commit_callbacks(execute=True):
            assert services.message_send_again(message=message) is True
            assert published == []
        mail_server.refuse(smtplib.SMTPResponseException(421, b"4.3.2 Busy"))

        assert published == [(SEND_TASK, (message.pk,), None)]
        with pytest.raises(services.SendDeferred):  # not failed at once: the budget starts over
            services.message_send(message_id=message.pk, owner="task:a")


class TestMessagesSendDue:
    def test_publishes_only_messages_nobody_is_sending(self, published):
        now = timezone.now()
        lost = outgoing(next_attempt_at=now - timedelta(minutes=5))
        abandoned = outgoing(
            state=MessageState.SENDING, lease_owner="task:dead", lease_until=now - timedelta(seconds=1)
        )
        outgoing(next_attempt_at=now - timedelta(seconds=30))  # its task may still be on its way
        outgoing(next_attempt_at=now + timedelta(minutes=5))  # waiting for its retry
        outgoing(state=MessageState.SENDING, lease_owner="task:alive", lease_until=now + timedelta(minutes=1))
        outgoing(state=MessageState.SENT, next_attempt_at=now - timedelta(hours=1))
        outgoing(state=MessageState.FAILED, next_attempt_at=now - timedelta(hours=1))

        count = services.messages_send_due(grace=timedelta(minutes=1))

        assert count == 2
        assert sorted(published) == sorted([(SEND_TASK, (lost.pk,), None), (SEND_TASK, (abandoned.pk,), None)])

    def test_the_longest_waiting_go_first_when_there_are_more_than_the_limit(self, published):
        now = timezone.now()
        rows = [outgoing(next_attempt_at=now - timedelta(minutes=minutes)) for minutes in (10, 40, 20, 30)]

        count = services.messages_send_due(grace=timedelta(minutes=1), limit=2)

        assert count == 2
        assert [args for _, args, _ in published] == [(rows[1].pk,), (rows[3].pk,)]

    def test_nothing_due_publishes_nothing(self, published):
        outgoing(next_attempt_at=timezone.now())

        assert services.messages_send_due(grace=timedelta(minutes=1)) == 0
        assert published == []
