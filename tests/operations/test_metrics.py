"""`/metrics`: closed without its token, and numbers that move when the system works."""

import pytest
import stripe
from django.db import transaction
from prometheus_client.parser import text_string_to_metric_families

from apps.catalog import services as catalog
from apps.payments.models import MirrorKind, MirrorRecord, WebhookEvent, WebhookEventState
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
    from apps.payments import selectors

    settings.METRICS_TOKEN = TOKEN

    def redis_down():
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(selectors, "machinery", redis_down)
    samples = _scrape(client)

    assert _value(samples, "state_up") == 0
    assert not any(name == "mirror_rows" for name, _ in samples)
    assert any(name == "http_request_duration_seconds_count" for name, _ in samples)
