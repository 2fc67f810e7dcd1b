"""Who processes stored events (apps/payments/webhooks/drain.py): a delivery wakes a drain only when one of
`WEBHOOK_DRAINERS` slots is free; a drain empties the table of ready events, gives its slot back and looks once
more, so no event is left waiting without a drain coming for it (at once, or at its retry time); the beat wakes
a drain for events a lost message left; an operator replays a parked event.

Here with the slots in this test run's own Redis database and what is published to the broker recorded, no
worker. Events delivered by the emulator and drained by real workers (duplicated, shuffled, in parallel, failing
for days) are covered in tests/journeys/test_webhook_processing.py.
"""

from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone

from apps.payments.webhooks import drain
from apps.payments.webhooks.ingest import webhook_receive
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def free_slots(settings):
    """No drain holds a slot when the test starts or after it ends."""
    settings.WEBHOOK_DRAINERS = 2
    client = redis.Redis.from_url(django_settings.COORDINATION_REDIS_URL)
    for key in client.scan_iter("webhooks:drain:*"):
        client.delete(key)
    yield
    for key in client.scan_iter("webhooks:drain:*"):
        client.delete(key)


def _delivered(event_id: str, event_type: str = "balance.available", obj: dict | None = None) -> WebhookEvent:
    event = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": 1_767_268_800,
        "livemode": False,
        "api_version": "2026-08-26.dahlia",
        "data": {"object": obj or {"id": "txn_1", "object": "balance"}},
    }
    webhook_receive(event=event)
    return WebhookEvent.objects.get(stripe_id=event_id)


def _waiting_for_its_payment(event_id: str) -> WebhookEvent:
    """An event of ours about an intent whose order is not recorded yet: it fails with `EventNotReady`."""
    intent = {
        "id": "pi_1",
        "object": "payment_intent",
        "status": "succeeded",
        "metadata": {"app_namespace": "testsuite"},
    }
    return _delivered(event_id, "payment_intent.succeeded", intent)


def _drains(queued_tasks) -> list[tuple]:
    return [task for task in queued_tasks if task[0] == drain.DRAIN_TASK]


class TestWakingADrain:
    def test_a_delivery_wakes_a_drain_only_while_a_slot_is_free(self, queued_tasks):
        woken = [drain.schedule_drain() for _ in range(3)]

        assert woken == [True, True, False]
        assert sorted(task[1] for task in _drains(queued_tasks)) == [(0,), (1,)]

    def test_a_slot_given_back_is_taken_by_the_next_delivery(self, queued_tasks):
        drain.schedule_drain()
        drain.schedule_drain()

        drain.release(1)

        assert drain.schedule_drain() is True
        assert _drains(queued_tasks)[-1][1] == (1,)

    def test_without_redis_every_delivery_wakes_a_drain(self, settings, queued_tasks):
        settings.COORDINATION_REDIS_URL = ""

        assert [drain.schedule_drain() for _ in range(3)] == [True, True, True]
        assert [task[1] for task in _drains(queued_tasks)] == [(None,)] * 3

    def test_a_stored_event_wakes_a_drain_only_once_it_commits(self, queued_tasks, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=False) as on_commit:
            _delivered("evt_1")
        before_commit = list(queued_tasks)
        for callback in on_commit:
            callback()

        assert before_commit == []
        assert [task[1] for task in _drains(queued_tasks)] == [(0,)]


class TestDraining:
    def test_a_drain_processes_every_ready_event_then_frees_its_slot(self, queued_tasks):
        events = [_delivered(f"evt_{n}") for n in range(3)]
        drain.schedule_drain()  # it holds slot 0
        queued_tasks.clear()

        done = drain.drain(0)

        assert done == 3
        assert {WebhookEvent.objects.get(pk=e.pk).state for e in events} == {WebhookEventState.IGNORED}
        assert _drains(queued_tasks) == []  # nothing left: no drain comes after it
        assert drain.schedule_drain() is True  # its slot is free again
        assert _drains(queued_tasks)[-1][1] == (0,)

    def test_an_event_that_must_wait_brings_a_drain_back_at_its_retry_time(self, queued_tasks, settings):
        settings.WEBHOOK_RETRY_BASE_SECONDS = 30
        waiting = _waiting_for_its_payment("evt_1")

        drain.drain(None)

        waiting.refresh_from_db()
        assert (waiting.state, waiting.attempts) == (WebhookEventState.RECEIVED, 1)
        assert waiting.outcome.startswith("waiting: the order of intent pi_1 is not recorded yet")
        [(_, _, delay)] = _drains(queued_tasks)
        assert 25 < delay <= 30

    def test_an_event_not_due_yet_is_left_for_its_time(self, queued_tasks):
        later = _delivered("evt_later")
        WebhookEvent.objects.filter(pk=later.pk).update(retry_at=timezone.now() + timedelta(minutes=5))

        assert drain.drain(None) == 0
        assert WebhookEvent.objects.get(pk=later.pk).state == WebhookEventState.RECEIVED
        [(_, _, delay)] = _drains(queued_tasks)
        assert 4 * 60 < delay <= 5 * 60

    def test_a_drain_that_ran_its_time_hands_over_to_a_fresh_one(self, queued_tasks, monkeypatch):
        _delivered("evt_1")
        monkeypatch.setattr(drain, "DRAIN_SECONDS", 0)

        assert drain.drain(None) == 0

        assert WebhookEvent.objects.get(stripe_id="evt_1").state == WebhookEventState.RECEIVED
        assert [task[2] for task in _drains(queued_tasks)] == [None]  # at once


class TestTheBeatAndOperators:
    def test_the_beat_wakes_a_drain_for_events_a_lost_message_left(self, queued_tasks):
        _delivered("evt_1")

        assert drain.wake_if_waiting() is True
        assert len(_drains(queued_tasks)) == 1

    def test_the_beat_leaves_events_not_due_and_an_empty_table_alone(self, queued_tasks):
        assert drain.wake_if_waiting() is False
        later = _delivered("evt_later")
        WebhookEvent.objects.filter(pk=later.pk).update(retry_at=timezone.now() + timedelta(minutes=5))

        assert drain.wake_if_waiting() is False
        assert _drains(queued_tasks) == []

    def test_a_parked_event_replayed_is_processed_again_from_scratch(
        self, queued_tasks, django_capture_on_commit_callbacks
    ):
        parked = _delivered("evt_1")
        WebhookEvent.objects.filter(pk=parked.pk).update(state=WebhookEventState.FAILED, attempts=70)

        with django_capture_on_commit_callbacks(execute=True):
            drain.replay(webhook_event=parked)
        drain.drain(0)

        parked.refresh_from_db()
        assert (parked.state, parked.attempts) == (WebhookEventState.IGNORED, 1)
        assert len(_drains(queued_tasks)) == 1
