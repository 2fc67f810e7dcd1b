"""Reads of the webhook intake and of everything that keeps Stripe in step (apps/payments/webhooks/selectors.py):
how many of Stripe's events wait and for how long, how many are parked, and one view of the mirror, the intake,
the Stripe request budget and the circuit breaker for the health check, the dashboard and `/metrics`.

Here on rows made directly and the circuit breaker in this test run's own Redis database. The health check's
verdicts on these numbers are in tests/test_health.py, the dashboard's and `/metrics`' in tests/operations/.
"""

from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone

from apps.payments.gateway.circuit_breaker import circuit_breaker
from apps.payments.mirror.models import MirrorState
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from apps.payments.webhooks.selectors import sync_health, webhook_events_before_count, webhook_health
from tests.payments.factories import MirrorRecordFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_stripe_state():
    """No budget or breaker state left by another test, nor left behind."""
    client = redis.Redis.from_url(django_settings.COORDINATION_REDIS_URL)
    for key in client.scan_iter("stripe:*"):
        client.delete(key)
    yield
    for key in client.scan_iter("stripe:*"):
        client.delete(key)


def _event(stripe_id: str, state: str = WebhookEventState.RECEIVED, received_ago: timedelta = timedelta(0)):
    event = WebhookEvent.objects.create(stripe_id=stripe_id, type="charge.refunded", state=state)
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - received_ago)
    return event


def test_events_waiting_and_parked_are_counted_and_the_oldest_waiting_named():
    _event("evt_new", received_ago=timedelta(seconds=5))
    _event("evt_old", received_ago=timedelta(minutes=7))
    _event("evt_parked", WebhookEventState.FAILED, received_ago=timedelta(days=3))
    _event("evt_done", WebhookEventState.PROCESSED, received_ago=timedelta(days=1))
    _event("evt_ignored", WebhookEventState.IGNORED, received_ago=timedelta(days=1))

    health = webhook_health()

    assert (health["waiting"], health["parked"]) == (2, 1)
    assert timezone.now() - health["oldest_waiting"] >= timedelta(minutes=7)
    assert 7 * 60 <= health["oldest_waiting_age_seconds"] < 8 * 60


def test_an_intake_with_nothing_waiting_is_not_behind():
    _event("evt_done", WebhookEventState.PROCESSED, received_ago=timedelta(hours=1))

    health = webhook_health()

    assert (health["waiting"], health["parked"], health["oldest_waiting"]) == (0, 0, None)
    assert health["oldest_waiting_age_seconds"] == 0.0


def test_events_before_a_moment_are_counted_whatever_their_state():
    _event("evt_1", WebhookEventState.PROCESSED, received_ago=timedelta(days=100))
    _event("evt_2", WebhookEventState.FAILED, received_ago=timedelta(days=95))
    _event("evt_3", received_ago=timedelta(days=1))

    assert webhook_events_before_count(before=timezone.now() - timedelta(days=90)) == 2


def test_one_view_of_the_mirror_the_intake_the_budget_and_the_breaker(settings):
    settings.STRIPE_RATE_LIMIT_PER_SECOND = 25.0
    settings.STRIPE_CIRCUIT_FAILURES, settings.STRIPE_CIRCUIT_COOLDOWN_SECONDS = 2, 30.0
    MirrorRecordFactory(state=MirrorState.FAILED)
    _event("evt_1")
    calm = sync_health()
    circuit_breaker().record_failure()
    circuit_breaker().record_failure()
    tripped = sync_health()

    assert calm["mirror"]["by_state"]["failed"] == 1
    assert calm["webhooks"]["waiting"] == 1
    assert (calm["stripe"]["limit_per_second"], calm["stripe"]["circuit_open_for"]) == (25.0, 0)
    assert 0 <= calm["stripe"]["budget_in_use"] <= 1
    assert 25 < tripped["stripe"]["circuit_open_for"] <= 30
