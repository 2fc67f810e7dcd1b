import pytest

from config.celery import app as celery_app

pytestmark = pytest.mark.django_db


def test_healthy_when_database_and_broker_answer(client):
    response = client.get("/health/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True


def test_unavailable_when_the_broker_is_down(client, monkeypatch):
    # Nothing listens on port 1: a real connection attempt that fails.
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")

    response = client.get("/health/")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"] == {"ok": False, "error": "OperationalError"}


def test_liveness_asks_nothing_of_the_dependencies(client, monkeypatch):
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")

    answer = client.get("/health/live")

    assert answer.status_code == 200
    assert answer.json() == {"status": "alive"}


def test_degraded_while_a_change_waits_too_long_for_stripe(client, settings):
    from datetime import timedelta

    from django.utils import timezone

    from tests.payments.factories import MirrorRecordFactory

    settings.HEALTH_MIRROR_BACKLOG_SECONDS = 600
    MirrorRecordFactory(pending_since=timezone.now() - timedelta(seconds=30))
    fresh = client.get("/health/").json()
    MirrorRecordFactory(pending_since=timezone.now() - timedelta(minutes=20))

    answer = client.get("/health/")

    assert fresh["status"] == "ok"
    assert answer.status_code == 200
    assert answer.json()["status"] == "degraded"
    assert answer.json()["reasons"][0].startswith("a change has waited 12")


def test_degraded_while_the_circuit_holds_stripe_calls_back(client, settings):
    from apps.payments.gateway.circuit_breaker import CircuitBreaker, _breaker

    breaker: CircuitBreaker = _breaker(2, 30.0, settings.COORDINATION_REDIS_URL)
    settings.STRIPE_CIRCUIT_FAILURES, settings.STRIPE_CIRCUIT_COOLDOWN_SECONDS = 2, 30.0
    try:
        breaker.record_failure()
        breaker.record_failure()

        answer = client.get("/health/").json()
    finally:
        breaker._redis.delete("stripe:circuit:open", "stripe:circuit:failures")

    assert answer["status"] == "degraded"
    assert answer["reasons"] == ["the circuit breaker holds Stripe calls back after repeated failures"]
    assert answer["checks"]["stripe_side"]["circuit_open"] is True


def test_degraded_names_its_reason_when_the_stripe_side_cannot_be_read(client, monkeypatch):
    from config import health

    def redis_down():
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(health, "sync_health", redis_down)
    answer = client.get("/health/").json()

    assert answer["status"] == "degraded"
    assert answer["reasons"] == ["the state of the Stripe side could not be read (ConnectionError)"]
