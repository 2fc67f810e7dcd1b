"""The mail tasks as a worker runs them (a request with the task's id), with what they publish observed."""

import smtplib
from datetime import timedelta

import pytest
from celery.exceptions import Retry
from django.core import mail
from django.core.mail.backends import locmem
from django.utils import timezone

from apps.mail.models import MessageState, OutgoingMessage
from apps.mail.tasks import message_send_task, messages_send_due_task
from config.celery import app as celery_app
from tests.mail.helpers import outgoing

pytestmark = pytest.mark.django_db

SEND_TASK = "apps.mail.tasks.message_send_task"


@pytest.fixture
def published(monkeypatch) -> list[tuple]:
    """What is published to the broker during the test, as (task name, args, countdown, task id)."""
    sent: list[tuple] = []

    def send_task(name, args=None, kwargs=None, countdown=None, task_id=None, **options):
        sent.append((name, tuple(args or ()), countdown, task_id))

    monkeypatch.setattr(celery_app, "send_task", send_task)
    return sent


def run_in_worker(task, *args, task_id: str):
    """Run the task's body as a worker would, with a request carrying its id (not `called_directly`)."""
    task.push_request(id=task_id, args=list(args), kwargs={}, retries=0, called_directly=False, is_eager=False)
    try:
        return task.run(*args)
    finally:
        task.pop_request()


class TestMessageSendTask:
    def test_sends_the_message_and_says_so(self, published):
        message = outgoing()

        outcome = run_in_worker(message_send_task, message.pk, task_id="t-1")

        assert outcome == "sent"
        assert mail.outbox[0].to == ["ada@example.com"]
        assert published == []

    def test_a_redelivered_task_takes_over_the_row_its_killed_worker_held(self):
        message = outgoing(
            state=MessageState.SENDING, lease_owner="task:t-1", lease_until=timezone.now() + timedelta(minutes=2)
        )

        redelivered = run_in_worker(message_send_task, message.pk, task_id="t-1")

        assert redelivered == "sent"
        assert len(mail.outbox) == 1

    def test_another_task_leaves_a_row_being_sent_alone(self, published):
        message = outgoing(
            state=MessageState.SENDING, lease_owner="task:t-1", lease_until=timezone.now() + timedelta(minutes=2)
        )

        assert run_in_worker(message_send_task, message.pk, task_id="t-2") == "skipped"
        assert mail.outbox == []
        assert published == []

    def test_a_deferred_send_is_retried_by_the_same_task_after_the_services_delay(
        self, published, monkeypatch, settings
    ):
        settings.MAIL_RETRY_BASE_SECONDS = 12.0
        message = outgoing()

        def greylist(backend, messages):
            raise smtplib.SMTPResponseException(451, b"4.7.1 Greylisted")

        monkeypatch.setattr(locmem.EmailBackend, "send_messages", greylist)

        with pytest.raises(Retry):
            run_in_worker(message_send_task, message.pk, task_id="t-1")

        # The same id, so the retry takes over the row if this worker's lease were still on it.
        assert published == [(SEND_TASK, (message.pk,), 12.0, "t-1")]
        assert OutgoingMessage.objects.get(pk=message.pk).state == MessageState.QUEUED


class TestMessagesSendDueTask:
    def test_requeues_what_waited_longer_than_the_configured_grace(self, published, settings):
        settings.MAIL_STALE_AFTER_SECONDS = 120
        stale = outgoing(next_attempt_at=timezone.now() - timedelta(minutes=3))
        outgoing(next_attempt_at=timezone.now() - timedelta(minutes=1))

        assert messages_send_due_task() == 1
        assert [(name, args) for name, args, _, _ in published] == [(SEND_TASK, (stale.pk,))]

    def test_a_longer_grace_leaves_the_same_message_waiting(self, published, settings):
        settings.MAIL_STALE_AFTER_SECONDS = 600
        outgoing(next_attempt_at=timezone.now() - timedelta(minutes=3))

        assert messages_send_due_task() == 0
        assert published == []
