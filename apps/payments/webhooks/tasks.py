"""The webhook intake's tasks: the drain, and the beat's wake-up and nightly prune.

Services queue the drain by name (`drain.DRAIN_TASK`), so this module imports its services at the top. Each
task keeps the name it was first published under (`name=`): the beat's schedule and the queue routes use it.
"""

from celery import shared_task

from apps.payments.webhooks import drain, retention


@shared_task(name=drain.DRAIN_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def drain_webhook_events_task(slot: int | None) -> int:
    """Process stored events until none is ready (or the drain has run long enough), then hand over."""
    return drain.drain(slot)


@shared_task(name="apps.payments.tasks.webhook_requeue_stale_task", ignore_result=True)
def webhook_requeue_stale_task() -> bool:
    """Beat: wake a drain if stored events wait (a lost message, a broker down at delivery time)."""
    return drain.wake_if_waiting()


# Its first night over a large backlog takes longer than a task may (each batch commits, so it gets there).
@shared_task(
    name="apps.payments.tasks.webhook_events_prune_task", ignore_result=True, soft_time_limit=3600, time_limit=3700
)
def webhook_events_prune_task() -> int:
    """Beat, nightly: delete settled events older than `WEBHOOK_EVENT_RETENTION_DAYS`; answers how many."""
    return retention.prune(before=retention.default_cutoff())
