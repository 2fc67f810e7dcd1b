"""Thin tasks: send one message by id; the beat picks up what no task is sending."""

from celery import shared_task
from django.conf import settings


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, ignore_result=True)
def message_send_task(self, message_id: int) -> str:
    """Send one outbox row; the row counts the attempts, so the task retries for as long as it says."""
    from apps.mail import services

    try:
        # A redelivered task keeps its id, so it takes over the row its killed worker held.
        return services.message_send(message_id=message_id, owner=f"task:{self.request.id}")
    except services.SendDeferred as deferred:
        raise self.retry(countdown=deferred.delay) from deferred


@shared_task(ignore_result=True)
def messages_send_due_task() -> int:
    """Beat: send what stayed queued (a lost task, a broker down at commit) or lost its worker."""
    from datetime import timedelta

    from apps.mail import services

    return services.messages_send_due(grace=timedelta(seconds=settings.MAIL_STALE_AFTER_SECONDS))
