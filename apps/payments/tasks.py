"""Thin tasks: each calls one service and decides between retrying and giving up.

Services import this module at their top to queue work (`task.apply_async_on_commit`); these tasks import
the services inside their bodies, when they run, so no import circle exists between the two.
"""

import random
from datetime import timedelta

from celery import shared_task
from django.conf import settings


def _countdown(retries: int, hint: float) -> float:
    backoff = min(settings.MIRROR_RETRY_MAX_SECONDS, 2**retries) * random.uniform(0.5, 1.0)  # noqa: S311
    return min(settings.MIRROR_RETRY_MAX_SECONDS, max(hint, backoff))


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, ignore_result=True)
def mirror_sync_task(self, record_id: int) -> str:
    """Bring one object's Stripe side up to date; safe to run twice, late, or beside another. Answers the
    `SyncOutcome` (a `str` enum: this module imports the project only inside its tasks)."""
    from apps.payments.gateway.circuit_breaker import CircuitOpen
    from apps.payments.gateway.errors import StripeKeySpent, StripeUnavailable
    from apps.payments.mirror import outbox, sync
    from apps.payments.mirror.outcomes import SyncOutcome

    try:
        # The task id survives a redelivery, so a killed worker's successor takes its lease over.
        return sync.mirror_sync(record_id=record_id, owner=f"task:{self.request.id}")
    except (StripeUnavailable, StripeKeySpent, CircuitOpen) as error:
        if self.request.retries >= settings.MIRROR_MAX_TASK_RETRIES:
            outbox.mirror_give_up(record_id=record_id, message=f"gave up after {self.request.retries} retries: {error}")
            return SyncOutcome.FAILED
        hint = 0.0 if isinstance(error, StripeKeySpent) else getattr(error, "retry_after", 1.0)
        raise self.retry(countdown=_countdown(self.request.retries, hint)) from error


@shared_task(ignore_result=True)
def mirror_requeue_stale_task() -> int:
    """Beat: queue again what stayed pending (a lost message, a broker down at commit)."""
    from apps.payments.mirror import outbox

    return outbox.requeue_stale(older_than=timedelta(seconds=settings.MIRROR_STALE_AFTER_SECONDS))


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def drain_webhook_events_task(slot: int | None) -> int:
    """Process stored events until none is ready (or the drain has run long enough), then hand over."""
    from apps.payments.webhooks import drain

    return drain.drain(slot)


@shared_task(ignore_result=True)
def webhook_requeue_stale_task() -> bool:
    """Beat: wake a drain if stored events wait (a lost message, a broker down at delivery time)."""
    from apps.payments.webhooks import drain

    return drain.wake_if_waiting()


# Its first night over a large backlog takes longer than a task may (each batch commits, so it gets there).
@shared_task(ignore_result=True, soft_time_limit=3600, time_limit=3700)
def webhook_events_prune_task() -> int:
    """Beat, nightly: delete settled events older than `WEBHOOK_EVENT_RETENTION_DAYS`; answers how many."""
    from apps.payments.webhooks import retention

    return retention.prune(before=retention.default_cutoff())


@shared_task(ignore_result=True)
def books_check_task() -> int:
    """Beat, nightly: compare the last `BOOKS_CHECK_DAYS` of our books with Stripe's; answers the drift found."""
    from django.utils import timezone

    from apps.payments.orders import books

    if not settings.STRIPE_MIRROR_ENABLED:
        return 0
    return books.books_check(since=timezone.now() - timedelta(days=settings.BOOKS_CHECK_DAYS)).drift_count
