"""Who processes stored events: a few drain tasks, woken by deliveries, that empty the table of received events.

A delivery does not publish a task per event (Celery's publish costs more than the
rest of the acknowledgement); it claims one of `WEBHOOK_DRAINERS` slots in Redis and
queues a drain only when it gets one. A drain processes events until none is ready,
gives its slot back, then looks once more: an event stored after the last look found
the slot free and queued a drain itself, or was stored before the look and is found
by it. Without Redis (`make run`) every delivery queues a drain.
"""

from functools import cache

import redis
from django.conf import settings

SLOT_SECONDS = 30  # a drain that dies frees its slot after this long; beat covers what it left

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
    return _redis(settings.STRIPE_BUDGET_REDIS_URL)


def schedule_drain(delay: float = 0) -> bool:
    """Queue a drain unless all drainers are busy (they look again before they stop)."""
    from apps.payments.tasks import drain_webhook_events_task

    slots = _slots()
    if slots is None:
        drain_webhook_events_task.apply_async((None,), countdown=delay or None)
        return True
    _, claim = slots
    slot = int(claim(keys=["webhooks:drain:"], args=[settings.WEBHOOK_DRAINERS, SLOT_SECONDS]))
    if slot < 0:
        return False
    drain_webhook_events_task.apply_async((slot,), countdown=delay or None)
    return True


def release(slot: int | None) -> None:
    slots = _slots()
    if slots is not None and slot is not None:
        slots[0].delete(f"webhooks:drain:{slot}")
