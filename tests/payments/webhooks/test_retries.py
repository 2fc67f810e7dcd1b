"""How long a failing event is retried, and what an operator sees once it is parked."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.payments.orders.errors import EventNotReady
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from apps.payments.webhooks.processing import note_failure, retry_delay

pytestmark = pytest.mark.django_db
THREE_DAYS = timedelta(days=3)


@pytest.fixture
def production_schedule(settings):
    """The defaults of config/settings/base.py, whatever the test environment says."""
    settings.WEBHOOK_RETRY_BASE_SECONDS = 2.0
    settings.WEBHOOK_RETRY_MAX_SECONDS = 3600.0
    settings.WEBHOOK_RETRY_HORIZON_SECONDS = 3 * 24 * 3600


def _fail(record: WebhookEvent, error: Exception | None = None) -> WebhookEvent:
    error = error or RuntimeError("Stripe said no")
    note_failure(webhook_event_id=record.pk, error=error, traceback="Traceback (most recent call last): ...")
    record.refresh_from_db()
    return record


def test_the_backoff_doubles_and_is_capped_at_an_hour(production_schedule):
    assert [retry_delay(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 64, 128]
    assert retry_delay(12) == 3600
    assert retry_delay(10_000) == 3600


def test_six_failures_within_a_minute_do_not_park_an_event(production_schedule):
    record = WebhookEvent.objects.create(stripe_id="evt_1", type="charge.refunded")

    for _ in range(6):
        record = _fail(record)

    assert (record.state, record.attempts) == (WebhookEventState.RECEIVED, 6)
    assert record.retry_at > timezone.now() + timedelta(seconds=60)


def test_retries_span_three_days_before_the_event_is_parked(production_schedule, caplog):
    record = WebhookEvent.objects.create(stripe_id="evt_1", type="charge.refunded")
    retries_before_the_horizon = 0
    elapsed = timedelta(0)
    while elapsed < THREE_DAYS:
        retries_before_the_horizon += 1
        elapsed += timedelta(seconds=retry_delay(retries_before_the_horizon))
    WebhookEvent.objects.filter(pk=record.pk).update(received_at=timezone.now() - THREE_DAYS + timedelta(minutes=1))

    still = _fail(record).state
    WebhookEvent.objects.filter(pk=record.pk).update(received_at=timezone.now() - THREE_DAYS - timedelta(seconds=1))
    with caplog.at_level(logging.ERROR, logger="apps.payments.webhooks"):
        parked = _fail(record)

    assert retries_before_the_horizon > 70  # at most an hour apart, for three days
    assert still == WebhookEventState.RECEIVED
    assert (parked.state, parked.retry_at) == (WebhookEventState.FAILED, None)
    assert "webhook event parked event=evt_1" in caplog.text


def test_an_event_that_waits_says_why_and_keeps_no_traceback(production_schedule):
    record = WebhookEvent.objects.create(stripe_id="evt_1", type="refund.created")

    record = _fail(record, EventNotReady("order 7 is pending: the refund waits for its payment"))

    assert record.outcome == "waiting: order 7 is pending: the refund waits for its payment"
    assert record.traceback == ""
    assert record.state == WebhookEventState.RECEIVED


def test_health_is_degraded_while_events_are_parked(client):
    healthy = client.get("/health/").json()
    WebhookEvent.objects.create(stripe_id="evt_1", type="charge.refunded", state=WebhookEventState.FAILED)

    answer = client.get("/health/")

    assert healthy["status"] == "ok"
    assert answer.status_code == 200  # the process works; an operator is needed, not a restart
    assert answer.json()["status"] == "degraded"
    assert answer.json()["reasons"] == ["1 Stripe event(s) parked after three days of failures: not applied"]
    assert answer.json()["checks"]["stripe_side"]["parked_events"] == 1


def test_the_admin_warns_about_parked_events(client):
    from tests.users.factories import UserFactory

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    WebhookEvent.objects.create(stripe_id="evt_1", type="charge.refunded", state=WebhookEventState.FAILED)

    page = client.get("/admin/payments/webhookevent/").content.decode()

    assert "1 event(s) failed for three days and are parked" in page


def test_the_namespace_is_generated_once_and_kept(settings):
    from apps.payments.gateway import installation
    from apps.payments.gateway.models import Installation

    settings.STRIPE_APP_NAMESPACE = ""
    Installation.objects.all().delete()
    installation._stored_namespace.cache_clear()
    try:
        first = installation.installation_namespace()
        installation._stored_namespace.cache_clear()
        second = installation.installation_namespace()
    finally:
        installation._stored_namespace.cache_clear()

    assert first == second == Installation.objects.get().namespace
    assert len(first) == 12
    settings.STRIPE_APP_NAMESPACE = "laptop-b"
    assert installation.installation_namespace() == "laptop-b"
