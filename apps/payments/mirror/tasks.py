"""The mirror's tasks: each calls one service and decides between retrying and giving up.

Services queue them by name (`outbox.MIRROR_SYNC_TASK`), so this module imports its services at the top.
"""

import random
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from apps.payments.gateway.circuit_breaker import CircuitOpen
from apps.payments.gateway.errors import StripeKeySpent, StripeUnavailable
from apps.payments.mirror import outbox, sync
from apps.payments.mirror.outcomes import SyncOutcome


def _countdown(retries: int, hint: float) -> float:
    backoff = min(settings.MIRROR_RETRY_MAX_SECONDS, 2**retries) * random.uniform(0.5, 1.0)  # noqa: S311
    return min(settings.MIRROR_RETRY_MAX_SECONDS, max(hint, backoff))


@shared_task(
    name=outbox.MIRROR_SYNC_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    ignore_result=True,
)
def mirror_sync_task(self, record_id: int) -> SyncOutcome:
    """Bring one object's Stripe side up to date; safe to run twice, late, or beside another."""
    try:
        # The task id survives a redelivery, so a killed worker's successor takes its lease over.
        return sync.mirror_sync(record_id=record_id, owner=f"task:{self.request.id}")
    except (StripeUnavailable, StripeKeySpent, CircuitOpen) as error:
        if self.request.retries >= settings.MIRROR_MAX_TASK_RETRIES:
            outbox.mirror_give_up(record_id=record_id, message=f"gave up after {self.request.retries} retries: {error}")
            return SyncOutcome.FAILED
        hint = 0.0 if isinstance(error, StripeKeySpent) else getattr(error, "retry_after", 1.0)
        raise self.retry(countdown=_countdown(self.request.retries, hint)) from error


@shared_task(name="apps.payments.tasks.mirror_requeue_stale_task", ignore_result=True)
def mirror_requeue_stale_task() -> int:
    """Beat: queue again what stayed pending (a lost message, a broker down at commit)."""
    return outbox.requeue_stale(older_than=timedelta(seconds=settings.MIRROR_STALE_AFTER_SECONDS))
