"""Fixtures for tests where everything is real: a Celery worker consuming Redis, the test
database committed, the Stripe emulator over HTTP and an SMTP server on loopback.

Loaded for the whole suite by `tests/conftest.py`, so payments and mail share one worker.
"""

import time

import pytest
import redis
import stripe
from django.conf import settings as django_settings

from apps.payments.mirror.models import MirrorRecord, MirrorState
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from config.celery import app as celery_app
from tests.celery_worker import RUNNING, ProductionWorkers
from tests.helpers import database_url
from tests.smtp_sink import SmtpSink

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
    events = list(
        WebhookEvent.objects.exclude(state=WebhookEventState.PROCESSED).values(
            "type", "state", "attempts", "outcome", "last_error"
        )
    )
    raise AssertionError(
        f"timed out after {timeout}s waiting for {message}; rows not synced: {pending}; events not processed: {events}"
    )


def worker_environment(emulator, smtp: SmtpSink, **overrides) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
        "DATABASE_CONN_MAX_AGE": "60",  # production's
        "STRIPE_API_BASE": emulator.url,
        "STRIPE_SECRET_KEY": emulator.api_key,
        "STRIPE_MIRROR_ENABLED": "true",
        "STRIPE_RATE_LIMIT_PER_SECOND": FAST_BUDGET,
        "STRIPE_RATE_LIMIT_PER_ENDPOINT": FAST_BUDGET,
        # This test process's own Redis databases (each pytest-xdist worker has its own; config/settings/test.py).
        "CELERY_BROKER_URL": django_settings.CELERY_BROKER_URL,
        "COORDINATION_REDIS_URL": django_settings.COORDINATION_REDIS_URL,
        "REDIS_TEST_URL": django_settings.REDIS_TEST_URL,
        # Its counters land where this process's /metrics reads them.
        "METRICS_DIR": django_settings.METRICS_DIR,
        # Failing webhook handlers are retried every second at most (still for three days, as in production).
        "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "WEBHOOK_RETRY_MAX_SECONDS": "1",
        # Mail goes to the loopback SMTP server; a deferred message is tried three times, 0.3 s apart and more.
        "EMAIL_URL": smtp.url,
        "EMAIL_TIMEOUT": "5",
        "MAIL_MAX_ATTEMPTS": "3",
        "MAIL_RETRY_BASE_SECONDS": "0.3",
        **overrides,
    }


@pytest.fixture(scope="session")
def smtp_sink():
    """A real SMTP server on loopback: the session's worker sends all mail to it."""
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def mailbox(smtp_sink):
    """The SMTP server, emptied and answering normally, for one test."""
    smtp_sink.reset()
    yield smtp_sink
    smtp_sink.reset()


@pytest.fixture(scope="session")
def mirror_worker(django_db_setup, django_db_blocker, stripe_emulator, smtp_sink):
    """The session's real workers, as production runs them: one for payments, one for mail."""
    with django_db_blocker.unblock():
        environment = worker_environment(stripe_emulator, smtp_sink)
    celery_app.control.purge()
    worker = ProductionWorkers(environment).start()
    yield worker
    worker.stop()


def _clear_shared_state() -> None:
    celery_app.control.purge()
    client = redis.Redis.from_url(django_settings.COORDINATION_REDIS_URL)
    # The drain slots too: a purged drain task never gives its slot back, and the next test's events would
    # wait for it to expire (30 s) with no beat to pick them up.
    for pattern in ("stripe:*", "webhooks:drain:*"):
        for key in client.scan_iter(pattern):
            client.delete(key)


@pytest.fixture
def mirror_on(emulator, settings, monkeypatch):
    """The mirror enabled in this process too (receivers record; commands and checks call the emulator)."""
    settings.STRIPE_MIRROR_ENABLED = True
    settings.STRIPE_SECRET_KEY = emulator.api_key
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_" + emulator.api_key.removeprefix("sk_test_")
    settings.STRIPE_API_BASE = emulator.url
    settings.STRIPE_RATE_LIMIT_PER_SECOND = float(FAST_BUDGET)
    settings.STRIPE_RATE_LIMIT_PER_ENDPOINT = float(FAST_BUDGET)
    monkeypatch.setattr(stripe, "api_base", emulator.url)
    _clear_shared_state()
    yield emulator
    _clear_shared_state()


def worker_idle() -> bool:
    """No task runs in any worker this test process started (a worker killed and not yet started again is asked
    too: it cannot answer, and the question then takes its whole second)."""
    if not RUNNING:
        return True
    active = celery_app.control.inspect(destination=sorted(RUNNING), timeout=1).active() or {}
    return not any(active.values())


@pytest.fixture
def mirror(mirror_on, mirror_worker, transactional_db):
    """Everything real: committed data, a worker consuming Redis, the emulator over HTTP."""
    yield mirror_on
    # The database is emptied after the test: not while the worker is still writing to it.
    celery_app.control.purge()
    wait_until(worker_idle, timeout=60, message="the worker to finish its tasks")
