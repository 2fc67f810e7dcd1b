"""Who processes stored events: a few drain tasks, woken by deliveries, that empty the table of received events.

A delivery does not publish a task per event (Celery's publish costs more than the
rest of the acknowledgement); it claims one of `WEBHOOK_DRAINERS` slots in Redis and
queues a drain only when it gets one. A drain processes events until none is ready,
gives its slot back, then looks once more: an event stored after the last look found
the slot free and queued a drain itself, or was stored before the look and is found
by it. Without Redis (`make run`) every delivery queues a drain.
"""

import time
from functools import cache

import redis
from django.conf import settings
from django.db.models import Min, Q
from django.utils import timezone

from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from apps.payments.webhooks.processing import process_batch
from config.task_base import queue_task, run_after_commit

# The drain task's name (`webhooks.tasks`), kept from when all of payments' tasks lived in one module: messages
# queued before an upgrade and the queue routes know it by this name.
DRAIN_TASK = "apps.payments.tasks.drain_webhook_events_task"

SLOT_SECONDS = 30  # a drain that dies frees its slot after this long; beat covers what it left
# A drain hands over to a fresh task after this long, well inside the tasks' time limit.
DRAIN_SECONDS = 20

# The first free slot, claimed in one round trip (this runs on every delivery); -1 when all are taken.
_CLAIM = """
for slot = 0, tonumber(ARGV[1]) - 1 do
  if redis.call('SET', KEYS[1] .. slot, '1', 'NX', 'EX', ARGV[2]) then return slot end
end
return -1
"""


@cache
def _redis(url: str):
    if not url:
        return None
    client = redis.Redis.from_url(url)
    return client, client.register_script(_CLAIM)


def _slots():
    return _redis(settings.COORDINATION_REDIS_URL)


def schedule_drain(delay: float = 0) -> bool:
    """Queue a drain unless all drainers are busy (they look again before they stop)."""
    slots = _slots()
    if slots is None:
        queue_task(DRAIN_TASK, None, countdown=delay)
        return True
    _, claim = slots
    slot = int(claim(keys=["webhooks:drain:"], args=[settings.WEBHOOK_DRAINERS, SLOT_SECONDS]))
    if slot < 0:
        return False
    queue_task(DRAIN_TASK, slot, countdown=delay)
    return True


def schedule_drain_on_commit() -> None:
    """Wake a drain once the events stored in this transaction are visible (the beat, if the broker is down)."""
    run_after_commit(schedule_drain)


def release(slot: int | None) -> None:
    slots = _slots()
    if slots is not None and slot is not None:
        slots[0].delete(f"webhooks:drain:{slot}")


def drain(slot: int | None) -> int:
    """Process stored events until none is ready (or this drain has run long enough), then hand over."""
    deadline = time.monotonic() + DRAIN_SECONDS
    done = 0
    try:
        while time.monotonic() < deadline and (processed := process_batch()):
            done += len(processed)
    finally:
        release(slot)
    # Look once more after giving the slot back: an event stored meanwhile is ours or found a free slot.
    waiting = WebhookEvent.objects.filter(state=WebhookEventState.RECEIVED)
    earliest_retry = waiting.aggregate(at=Min("retry_at"))["at"]
    if waiting.filter(retry_at__isnull=True).exists() or time.monotonic() >= deadline:
        schedule_drain()
    elif earliest_retry is not None:
        schedule_drain(delay=max(0.0, (earliest_retry - timezone.now()).total_seconds()))
    return done


def wake_if_waiting() -> bool:
    """Beat: wake a drain if stored events wait (a lost message, a broker down at delivery time)."""
    ready = WebhookEvent.objects.filter(state=WebhookEventState.RECEIVED).filter(
        Q(retry_at__isnull=True) | Q(retry_at__lte=timezone.now())
    )
    return ready.exists() and schedule_drain()


def replay(*, webhook_event: WebhookEvent) -> None:
    """Process a parked (or any) event again."""
    WebhookEvent.objects.filter(pk=webhook_event.pk).update(state=WebhookEventState.RECEIVED, attempts=0, retry_at=None)
    schedule_drain_on_commit()
