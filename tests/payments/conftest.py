"""Fixtures of the payments unit tests."""

import pytest
import redis
import stripe
from django.conf import settings as django_settings

from apps.payments.gateway import client
from config.celery import app as celery_app
from tests.payments.stripe_stand_in import API_KEY, ModuleLevelCallsRefused, StripeStandIn


@pytest.fixture
def stripe_stand_in(settings, monkeypatch) -> StripeStandIn:
    """Stripe, in memory, behind `gateway()` for this test, as an installation with a key has it (the mirror on):
    a worker's gateway that tries each call once (`STRIPE_MAX_RETRIES=0`, so nothing sleeps), with no rate budget
    or circuit breaker in the way. dj-stripe's own requests are refused."""
    settings.STRIPE_SECRET_KEY = API_KEY
    settings.STRIPE_MIRROR_ENABLED = True
    settings.STRIPE_MAX_RETRIES = 0
    stand_in = StripeStandIn()
    monkeypatch.setattr(client, "_gateway", lambda *configuration: stand_in.gateway)
    monkeypatch.setattr(stripe, "default_http_client", ModuleLevelCallsRefused())
    return stand_in


@pytest.fixture
def queued_tasks(monkeypatch) -> list[tuple]:
    """What is published to the broker during the test, as (task name, args, countdown): nothing goes out."""
    published: list[tuple] = []

    def send_task(name, args=None, kwargs=None, countdown=None, **options):
        published.append((name, tuple(args or ()), countdown))

    monkeypatch.setattr(celery_app, "send_task", send_task)
    return published


@pytest.fixture
def budget_redis():
    """This run's coordination Redis (its URL), with no Stripe budget or circuit state before or after the test."""
    coordination = redis.Redis.from_url(django_settings.COORDINATION_REDIS_URL)
    for key in coordination.scan_iter("stripe:*"):
        coordination.delete(key)
    yield django_settings.COORDINATION_REDIS_URL
    for key in coordination.scan_iter("stripe:*"):
        coordination.delete(key)
