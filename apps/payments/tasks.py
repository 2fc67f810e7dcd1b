"""Thin tasks: load by id, call the mirror, decide between retrying and giving up."""

import random

from celery import shared_task
from django.conf import settings

from apps.payments.circuit_breaker import CircuitOpen
from apps.payments.stripe_client import StripeKeySpent, StripeUnavailable

RETRYABLE = (StripeUnavailable, StripeKeySpent, CircuitOpen)
# A drain hands over to a fresh task after this long, well inside the tasks' time limit.
DRAIN_SECONDS = 20


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


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def drain_webhook_events_task(slot: int | None) -> int:
    """Process stored events until none is ready (or this task has run long enough), then hand over."""
    import time

    from django.db.models import Min

    from apps.payments import webhook_drain, webhook_handlers
    from apps.payments.models import WebhookEvent, WebhookEventState

    deadline = time.monotonic() + DRAIN_SECONDS
    done = 0
    try:
        while time.monotonic() < deadline and webhook_handlers.process_next() is not None:
            done += 1
    finally:
        webhook_drain.release(slot)
    # Look once more after giving the slot back: an event stored meanwhile is ours or found a free slot.
    waiting = WebhookEvent.objects.filter(state=WebhookEventState.RECEIVED)
    earliest_retry = waiting.aggregate(at=Min("retry_at"))["at"]
    if waiting.filter(retry_at__isnull=True).exists() or time.monotonic() >= deadline:
        webhook_drain.schedule_drain()
    elif earliest_retry is not None:
        from django.utils import timezone

        webhook_drain.schedule_drain(delay=max(0.0, (earliest_retry - timezone.now()).total_seconds()))
    return done


@shared_task(ignore_result=True)
def webhook_requeue_stale_task() -> bool:
    """Beat: wake a drain if stored events wait (a lost message, a broker down at delivery time)."""
    from django.db.models import Q
    from django.utils import timezone

    from apps.payments.models import WebhookEvent, WebhookEventState
    from apps.payments.webhook_drain import schedule_drain

    ready = WebhookEvent.objects.filter(state=WebhookEventState.RECEIVED).filter(
        Q(retry_at__isnull=True) | Q(retry_at__lte=timezone.now())
    )
    return ready.exists() and schedule_drain()
