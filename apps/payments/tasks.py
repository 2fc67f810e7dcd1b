"""Thin tasks: load by id, call the mirror, decide between retrying and giving up."""

import random

from celery import shared_task
from django.conf import settings

from apps.payments.circuit_breaker import CircuitOpen
from apps.payments.stripe_client import StripeKeySpent, StripeUnavailable

RETRYABLE = (StripeUnavailable, StripeKeySpent, CircuitOpen)


def _countdown(retries: int, hint: float) -> float:
    backoff = min(settings.MIRROR_RETRY_MAX_SECONDS, 2**retries) * random.uniform(0.5, 1.0)  # noqa: S311
    return min(settings.MIRROR_RETRY_MAX_SECONDS, max(hint, backoff))


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, ignore_result=True)
def mirror_sync_task(self, record_id: int) -> str:
    """Bring one object's Stripe side up to date; safe to run twice, late, or beside another."""
    from apps.payments import mirror

    try:
        # The task id survives a redelivery, so a killed worker's successor takes its lease over.
        return mirror.mirror_sync(record_id=record_id, owner=f"task:{self.request.id}")
    except RETRYABLE as error:
        if self.request.retries >= settings.MIRROR_MAX_TASK_RETRIES:
            mirror.mirror_give_up(record_id=record_id, message=f"gave up after {self.request.retries} retries: {error}")
            return "failed"
        hint = 0.0 if isinstance(error, StripeKeySpent) else getattr(error, "retry_after", 1.0)
        raise self.retry(countdown=_countdown(self.request.retries, hint)) from error


@shared_task(ignore_result=True)
def mirror_requeue_stale_task() -> int:
    """Beat: queue again what stayed pending (a lost message, a broker down at commit)."""
    from datetime import timedelta

    from apps.payments import mirror

    return mirror.requeue_stale(older_than=timedelta(seconds=settings.MIRROR_STALE_AFTER_SECONDS))


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, ignore_result=True)
def process_webhook_event_task(self, webhook_event_id: int) -> str:
    """Process one stored Stripe event; a failing handler is retried with backoff, then parked as failed."""
    import traceback

    from apps.payments import webhook_handlers

    try:
        return webhook_handlers.process_event(webhook_event_id=webhook_event_id)
    except Exception as error:
        attempt = self.request.retries + 1
        park = attempt >= settings.WEBHOOK_MAX_ATTEMPTS
        webhook_handlers.note_failure(
            webhook_event_id=webhook_event_id, error=error, traceback=traceback.format_exc(), park=park
        )
        if park:
            return "failed"
        hint = getattr(error, "retry_after", 0.0)
        raise self.retry(countdown=_countdown(attempt, hint)) from error


@shared_task(ignore_result=True)
def webhook_requeue_stale_task() -> int:
    """Beat: queue events stored but never processed (their message was lost)."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.payments.models import WebhookEvent, WebhookEventState
    from apps.payments.webhook_ingest import enqueue_event

    cutoff = timezone.now() - timedelta(seconds=settings.MIRROR_STALE_AFTER_SECONDS)
    stale = WebhookEvent.objects.filter(state=WebhookEventState.RECEIVED, received_at__lt=cutoff, attempts=0)
    ids = list(stale.values_list("pk", flat=True)[:1000])
    for webhook_event_id in ids:
        enqueue_event(webhook_event_id)
    return len(ids)
