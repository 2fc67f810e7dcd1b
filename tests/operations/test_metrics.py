"""`/metrics`: closed without its token, and numbers that move when the system works."""

import time
from datetime import timedelta

import pytest
import stripe
from django.db import transaction
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.catalog import services as catalog
from apps.mail.models import MessageState, OutgoingMessage
from apps.payments.gateway.client import gateway
from apps.payments.gateway.errors import StripeUnavailable
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.mirror.tasks import mirror_sync_task
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from tests.payments.helpers import settled, webhooks_quiet
from tests.worker_fixtures import wait_until

TOKEN = "metrics-token-for-tests"


def _scrape(client) -> dict[tuple, float]:
    answer = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert answer.status_code == 200, answer.content
    assert answer["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.content.decode())
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
def test_without_a_token_configured_there_are_no_metrics(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "])
def test_a_scrape_without_the_right_token_is_refused(client, settings, header):
    settings.METRICS_TOKEN = TOKEN
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}

    answer = client.get("/metrics", **extra)

    assert answer.status_code == 401
    assert answer["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"mirror_rows" not in answer.content


@pytest.mark.django_db
def test_requests_are_timed_by_view_name_not_by_path(client, settings):
    settings.METRICS_TOKEN = TOKEN
    before = _scrape(client)
    client.get("/api/v1/products/999999/")
    client.get("/no/such/path/123")

    after = _scrape(client)

    named = ("http_request_duration_seconds_count", {"view": "product-detail", "method": "GET", "status": "4xx"})
    unmatched = ("http_request_duration_seconds_count", {"view": "unmatched", "method": "GET", "status": "4xx"})
    assert _value(after, named[0], **named[1]) == _value(before, named[0], **named[1]) + 1
    assert _value(after, unmatched[0], **unmatched[1]) == _value(before, unmatched[0], **unmatched[1]) + 1
    assert not any("999999" in str(labels) for _, labels in after)


def test_the_numbers_move_when_a_product_is_mirrored_and_a_webhook_processed(webhooks, client, settings):
    settings.METRICS_TOKEN = TOKEN
    before = _scrape(client)

    with transaction.atomic():
        kettle = catalog.product_create(name="Kettle")
    wait_until(settled, message="the kettle in Stripe")
    mirrored = _scrape(client)

    stripe_id = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=kettle.pk).stripe_id
    stripe.StripeClient(webhooks.api_key, base_addresses={"api": webhooks.url}).v1.products.update(
        stripe_id, params={"description": "Edited in Stripe"}
    )
    webhooks_quiet(webhooks)
    wait_until(lambda: WebhookEvent.objects.filter(type="product.updated", state=WebhookEventState.PROCESSED).exists())
    processed = _scrape(client)

    # The worker's counters, read from this process's scrape.
    assert _value(mirrored, "mirror_syncs_total", outcome="synced") > _value(
        before, "mirror_syncs_total", outcome="synced"
    )
    posted = {"endpoint": "POST /v1/products", "status": "200"}
    assert _value(mirrored, "stripe_requests_total", **posted) > _value(before, "stripe_requests_total", **posted)
    task = {"task": "apps.payments.tasks.mirror_sync_task", "outcome": "succeeded"}
    assert _value(mirrored, "celery_tasks_total", **task) > _value(before, "celery_tasks_total", **task)
    # The database's state, read at the scrape.
    assert _value(mirrored, "mirror_rows", state="synced") == _value(before, "mirror_rows", state="synced") + 1
    assert _value(mirrored, "mirror_oldest_pending_age_seconds") == 0
    # The delivery (acknowledged by the live server) and its processing (by the worker).
    stored = _value(processed, "webhook_deliveries_total", result="stored")
    assert stored > _value(mirrored, "webhook_deliveries_total", result="stored")
    done = {"type": "product.updated", "state": "processed"}
    assert (
        _value(processed, "webhook_events_processed_total", **done)
        == _value(mirrored, "webhook_events_processed_total", **done) + 1
    )
    assert _value(processed, "webhook_processing_lag_seconds_count") > _value(
        mirrored, "webhook_processing_lag_seconds_count"
    )
    assert _value(processed, "webhook_events_waiting") == 0
    assert _value(processed, "stripe_circuit_open") == 0


@pytest.mark.django_db
def test_the_counters_still_answer_when_the_state_cannot_be_read(client, settings, monkeypatch):
    from apps.operations import metrics

    settings.METRICS_TOKEN = TOKEN

    def redis_down():
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(metrics, "sync_health", redis_down)
    samples = _scrape(client)

    assert _value(samples, "state_up") == 0
    assert not any(name == "mirror_rows" for name, _ in samples)
    assert any(name == "http_request_duration_seconds_count" for name, _ in samples)


def _create_product(name: str):
    return gateway().call(lambda options: gateway().v1.products.create(params={"name": name}, options=options))


def _list_products():
    return gateway().call(lambda options: gateway().v1.products.list(options=options))


@pytest.mark.django_db
def test_429s_budget_waits_the_budget_in_use_and_an_open_circuit_are_counted(client, settings, mirror_on):
    settings.METRICS_TOKEN = TOKEN
    settings.STRIPE_RATE_LIMIT_PER_SECOND = settings.STRIPE_RATE_LIMIT_PER_ENDPOINT = 5.0
    settings.STRIPE_CIRCUIT_FAILURES, settings.STRIPE_CIRCUIT_COOLDOWN_SECONDS = 2, 60.0
    before = _scrape(client)

    # Stripe's limiter refuses once; the retry goes through.
    mirror_on.add_fault(status=429, count=1, path_prefix="/v1/products", method="POST")
    _create_product("Kettle")
    # Five a second with no burst to speak of: back-to-back calls wait their turn.
    for _ in range(3):
        _list_products()
    # Two answers of 500 open the circuit; the next attempt is refused before it leaves.
    mirror_on.add_fault(status=500, path_prefix="/v1/products", method="POST")
    with pytest.raises(StripeUnavailable):
        _create_product("Teapot")
    time.sleep(1.05 - time.time() % 1)  # the budget in use counts whole seconds gone by
    after = _scrape(client)

    def moved(name: str, **labels) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("stripe_requests_total", endpoint="POST /v1/products", status="429") == 1
    assert moved("stripe_requests_total", endpoint="POST /v1/products", status="200") == 1
    assert moved("stripe_requests_total", endpoint="POST /v1/products", status="500") == 2
    assert moved("stripe_requests_total", endpoint="GET /v1/products", status="200") == 3
    assert moved("stripe_budget_waits_total") >= 2
    assert moved("stripe_budget_wait_seconds_total") >= 0.3
    assert moved("stripe_budget_exhausted_total") == 0
    # Seven requests went out in the last ten seconds, of a budget of five a second.
    assert _value(after, "stripe_budget_in_use_ratio") == pytest.approx(7 / 10 / 5)
    assert _value(before, "stripe_circuit_open") == 0
    assert _value(after, "stripe_circuit_open") == 1
    assert moved("stripe_circuit_refused_total") == 1


@pytest.mark.django_db
def test_the_outbox_and_the_oldest_waiting_event_are_gauged(client, settings):
    settings.METRICS_TOKEN = TOKEN
    now = timezone.now()
    for number, (state, due) in enumerate(
        [
            (MessageState.QUEUED, now - timedelta(minutes=5)),
            (MessageState.QUEUED, now),
            (MessageState.SENDING, now),
            (MessageState.FAILED, now),
            (MessageState.SENT, now),
        ]
    ):
        OutgoingMessage.objects.create(
            idempotency_key=f"receipt:order:{number}",
            kind="receipt",
            recipient="a@example.com",
            subject="Receipt",
            body_text="",
            body_html="",
            message_id=f"<{number}@example.com>",
            state=state,
            next_attempt_at=due,
        )
    waiting = WebhookEvent.objects.create(stripe_id="evt_waiting", type="charge.succeeded")
    WebhookEvent.objects.filter(pk=waiting.pk).update(received_at=now - timedelta(minutes=12))
    WebhookEvent.objects.create(stripe_id="evt_parked", type="charge.refunded", state=WebhookEventState.FAILED)

    samples = _scrape(client)

    assert _value(samples, "outbox_messages", state="queued") == 2
    assert _value(samples, "outbox_messages", state="sending") == 1
    assert _value(samples, "outbox_messages", state="failed") == 1
    assert _value(samples, "outbox_messages", state="sent_lately") == 1
    assert 300 <= _value(samples, "outbox_oldest_due_age_seconds") < 360
    assert _value(samples, "webhook_events_waiting") == 1
    assert 720 <= _value(samples, "webhook_oldest_waiting_age_seconds") < 780
    assert _value(samples, "webhook_events_parked") == 1


def test_a_task_that_is_retried_and_one_that_fails_are_counted(mirror, client, settings):
    settings.METRICS_TOKEN = TOKEN
    sync = "apps.payments.tasks.mirror_sync_task"
    before = _scrape(client)

    # Four answers of 500 use up the gateway's own retries: the task is retried, and then gets through.
    mirror.add_fault(status=500, count=4, path_prefix="/v1/products", method="POST")
    with transaction.atomic():
        catalog.product_create(name="Kettle")
    wait_until(settled, message="the kettle in Stripe")
    # A message the task cannot make sense of fails it.
    mirror_sync_task.apply_async(args=["not-a-record-id"])

    def counted_failure() -> dict | None:
        samples = _scrape(client)
        failures = _value(samples, "celery_tasks_total", task=sync, outcome="failed")
        return samples if failures > _value(before, "celery_tasks_total", task=sync, outcome="failed") else None

    failed = wait_until(counted_failure, message="the failed task counted")

    assert MirrorRecord.objects.get(kind=MirrorKind.PRODUCT).state == MirrorState.SYNCED
    for outcome in ("retried", "failed"):
        assert _value(failed, "celery_tasks_total", task=sync, outcome=outcome) == (
            _value(before, "celery_tasks_total", task=sync, outcome=outcome) + 1
        ), outcome
    assert _value(failed, "celery_task_duration_seconds_count", task=sync) > _value(
        before, "celery_task_duration_seconds_count", task=sync
    )
