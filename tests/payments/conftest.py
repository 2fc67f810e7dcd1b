import time
from contextlib import contextmanager
from urllib.parse import quote

import pytest
import redis
import stripe
from django.conf import settings as django_settings
from django.db import connection
from kombu import pools

from apps.payments.models import MirrorRecord, MirrorState
from config.celery import app as celery_app
from tests.celery_worker import WorkerProcess

FAST_BUDGET = "1000"


def wait_until(predicate, timeout: float = 30, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pending = list(
        MirrorRecord.objects.exclude(state=MirrorState.SYNCED).values(
            "kind", "object_id", "state", "version", "synced_version", "attempts", "lease_owner", "last_error"
        )
    )
    raise AssertionError(f"timed out after {timeout}s waiting for {message}; rows not synced: {pending}")


def settled() -> bool:
    """True once no mirror row is pending (each is synced or failed)."""
    return not MirrorRecord.objects.filter(state=MirrorState.PENDING).exists()


def current_database_url() -> str:
    """The URL of the database this test run uses, for processes started beside it."""
    db = connection.settings_dict
    auth = db["USER"] or ""
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = quote(db["HOST"] or "", safe="")
    netloc = f"{auth}@{host}" if auth else host
    if db["PORT"]:
        netloc += f":{db['PORT']}"
    return f"postgres://{netloc}/{db['NAME']}"


def worker_environment(emulator, **overrides) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": current_database_url(),
        "STRIPE_API_BASE": emulator.url,
        "STRIPE_SECRET_KEY": emulator.api_key,
        "STRIPE_MIRROR_ENABLED": "true",
        "STRIPE_RATE_LIMIT_PER_SECOND": FAST_BUDGET,
        "STRIPE_RATE_LIMIT_PER_ENDPOINT": FAST_BUDGET,
        "CELERY_BROKER_URL": django_settings.CELERY_BROKER_URL,
        # Failing webhook handlers are parked after two tries, so tests need not wait long.
        "WEBHOOK_MAX_ATTEMPTS": "2",
        **overrides,
    }


@pytest.fixture(scope="session")
def mirror_worker(django_db_setup, django_db_blocker, stripe_emulator):
    """One real worker for the session; tests that kill workers start their own."""
    with django_db_blocker.unblock():
        environment = worker_environment(stripe_emulator)
    celery_app.control.purge()
    worker = WorkerProcess(environment).start()
    yield worker
    worker.stop()


@contextmanager
def broker_unreachable():
    """Messages sent meanwhile go nowhere, as when the broker is down at commit time."""
    real = celery_app.conf.broker_url

    def reconnect(url: str) -> None:
        celery_app.conf.broker_url = url
        # Kombu keeps pools per connection in a registry of its own; drop them all.
        pools.reset()
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    reconnect("redis://127.0.0.1:1/0")
    try:
        yield
    finally:
        reconnect(real)


def _clear_shared_state() -> None:
    celery_app.control.purge()
    client = redis.Redis.from_url(django_settings.STRIPE_BUDGET_REDIS_URL)
    for key in client.scan_iter("stripe:*"):
        client.delete(key)


@pytest.fixture
def mirror_on(emulator, settings, monkeypatch):
    """The mirror enabled in this process too (receivers record; commands and checks call the emulator)."""
    settings.STRIPE_MIRROR_ENABLED = True
    settings.STRIPE_SECRET_KEY = emulator.api_key
    settings.STRIPE_API_BASE = emulator.url
    settings.STRIPE_RATE_LIMIT_PER_SECOND = float(FAST_BUDGET)
    settings.STRIPE_RATE_LIMIT_PER_ENDPOINT = float(FAST_BUDGET)
    monkeypatch.setattr(stripe, "api_base", emulator.url)
    _clear_shared_state()
    yield emulator
    _clear_shared_state()


def worker_idle() -> bool:
    active = celery_app.control.inspect(timeout=1).active() or {}
    return not any(active.values())


@pytest.fixture
def mirror(mirror_on, mirror_worker, transactional_db):
    """Everything real: committed data, a worker consuming Redis, the emulator over HTTP."""
    yield mirror_on
    # The database is emptied after the test: not while the worker is still writing to it.
    celery_app.control.purge()
    wait_until(worker_idle, timeout=60, message="the worker to finish its tasks")


def stripe_objects_by_ref(emulator, resource: str) -> dict[str, list[str]]:
    """Stripe's side: ids of each `app_ref`, to count duplicates."""
    client = stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url})
    service = getattr(client.v1, resource)
    found: dict[str, list[str]] = {}
    for obj in service.list(params={"limit": 100}).auto_paging_iter():
        if getattr(obj, "deleted", False):
            continue
        ref = (obj.metadata or {}).get("app_ref")
        if ref:
            found.setdefault(ref, []).append(obj.id)
    return found


@pytest.fixture
def webhooks(mirror, live_server, settings):
    """Stripe (the emulator) delivers signed events to this test's live /stripe/webhook/."""
    client = stripe.StripeClient(mirror.api_key, base_addresses={"api": mirror.url})
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": f"{live_server.url}/stripe/webhook/", "enabled_events": ["*"]}
    )
    settings.STRIPE_WEBHOOK_SECRETS = [endpoint.secret]
    mirror.control("POST", "webhooks", {"retry_base_seconds": 0.2})
    return mirror


def events_settled() -> bool:
    """Stripe delivered everything and every stored event is processed, ignored or failed."""
    from apps.payments.models import WebhookEvent, WebhookEventState

    return not WebhookEvent.objects.filter(state=WebhookEventState.RECEIVED).exists()
