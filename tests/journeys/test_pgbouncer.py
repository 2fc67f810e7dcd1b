"""Every process behind PgBouncer in transaction mode, the pooler a deployment puts in front of PostgreSQL once
its web and worker processes outnumber PostgreSQL's connections: the catalog mirrored, a checkout paid, its
webhooks processed, a refund made and the catalog reconciled, each process connected through a real PgBouncer
that lends two PostgreSQL connections to all of them."""

import os
import subprocess
import sys

import pytest
import redis
import requests
import stripe
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

from apps.payments.orders.models import Order, OrderRefund, OrderStatus
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from apps.users import services as users
from tests.celery_worker import ProductionWorkers
from tests.payments.helpers import PASSWORD, URLS, events_settled, order_settles, settled
from tests.pgbouncer import SERVER_CONNECTIONS, PgBouncer
from tests.users.factories import operator
from tests.web_process import ROOT, WebProcess
from tests.worker_fixtures import wait_until, worker_environment

pytestmark = pytest.mark.integration

# A Redis database no other test uses (the soak takes 1 to 3, each test worker three of 4 to 15): the processes
# behind PgBouncer take their tasks from it, never the session's workers.
OWN_REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def pgbouncer():
    bouncer = PgBouncer().start()
    yield bouncer
    bouncer.stop()


@pytest.fixture
def own_redis():
    client = redis.Redis.from_url(OWN_REDIS)
    client.flushdb()
    yield OWN_REDIS
    client.flushdb()


@pytest.fixture
def stack(pgbouncer, own_redis, emulator, smtp_sink, transactional_db):
    """The web process and the workers, as production runs them, every one connected through PgBouncer."""
    web = WebProcess({})
    endpoint = stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url}).v1.webhook_endpoints.create(
        params={"url": f"{web.url}/stripe/webhook/", "enabled_events": ["*"]}
    )
    emulator.control("POST", "webhooks", {"retry_base_seconds": 0.2})
    environment = worker_environment(
        emulator,
        smtp_sink,
        DATABASE_URL=pgbouncer.url(connection.settings_dict["NAME"]),
        DATABASE_TRANSACTION_POOLING="true",
        CELERY_BROKER_URL=own_redis,
        COORDINATION_REDIS_URL=own_redis,
        REDIS_TEST_URL=own_redis,
        STRIPE_WEBHOOK_SECRET=endpoint.secret,
    )
    web.environment = environment
    workers = ProductionWorkers(environment, label="pooled-")
    try:
        workers.start()
        web.start()
        yield {"web": web, "environment": environment, "emulator": emulator, "pgbouncer": pgbouncer}
    finally:
        web.stop()
        workers.stop()


def _as(user):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {AccessToken.for_user(user)}"
    return session


def _reconcile(stack, *options: str) -> str:
    """`stripe_reconcile` run as an operator runs it, behind PgBouncer too; what it printed."""
    run = subprocess.run(
        [sys.executable, "manage.py", "stripe_reconcile", *options],
        cwd=ROOT,
        env={**os.environ, **stack["environment"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_a_shop_runs_behind_pgbouncer_in_transaction_mode(stack):
    web, emulator, bouncer = stack["web"], stack["emulator"], stack["pgbouncer"]
    staff = _as(operator())
    customer = _as(users.user_create(email="ada@example.com", password=PASSWORD, name="Ada"))

    product = staff.post(f"{web.url}/api/v1/products", json={"name": "Teapot"}, timeout=30)
    assert product.status_code == 201, product.text
    price = staff.post(
        f"{web.url}/api/v1/prices",
        json={"product": product.json()["id"], "unit_amount": 4500, "currency": "eur"},
        timeout=30,
    )
    assert price.status_code == 201, price.text
    wait_until(settled, message="the worker behind PgBouncer to mirror the catalog")

    started = customer.post(
        f"{web.url}/api/v1/checkout/sessions",
        json={"lines": [{"price": price.json()["id"], "quantity": 2}], **URLS},
        timeout=30,
    )
    assert started.status_code == 201, started.text
    emulator.complete_checkout(started.json()["session_id"], "paid")
    order = order_settles(started.json()["order"], OrderStatus.PAID)

    refund = staff.post(f"{web.url}/api/v1/orders/{order.pk}/refunds", json={"amount": 2000}, timeout=30)
    assert refund.status_code == 201, refund.text
    order_settles(order.pk, OrderStatus.PARTIALLY_REFUNDED)
    assert emulator.wait_for_webhooks(20)
    wait_until(events_settled, message="the worker behind PgBouncer to process every event")

    # The staff member was made here, where the mirror is off: the reconcile behind PgBouncer repairs that.
    # Run after run: a lock kept by a PostgreSQL session would stay on whichever connection took it, and refuse
    # a later run that lands on another.
    repaired, *_, checked = [_reconcile(stack), *(_reconcile(stack, "--dry-run") for _ in range(3))]

    assert "missing: users.user:" in repaired, repaired
    assert "Dry run: nothing was changed." in checked, checked
    assert not any(f"  {drift}:" in checked for drift in ("missing", "extra", "differing")), checked
    order = Order.objects.get(pk=order.pk)
    assert (order.amount_total, order.amount_refunded) == (9000, 2000)
    assert OrderRefund.objects.filter(order=order).count() == 1
    assert WebhookEvent.objects.filter(state=WebhookEventState.PROCESSED).exists()
    assert not WebhookEvent.objects.filter(state__in=[WebhookEventState.RECEIVED, WebhookEventState.FAILED]).exists()
    # It went through the pooler: many clients, never more than its two connections to PostgreSQL.
    pools = [pool for pool in bouncer.admin("SHOW POOLS") if pool["database"] != "pgbouncer"]
    stats = {row["database"]: row for row in bouncer.admin("SHOW STATS")}
    assert sum(pool["cl_active"] + pool["cl_waiting"] for pool in pools) > SERVER_CONNECTIONS
    assert all(pool["sv_active"] + pool["sv_idle"] + pool["sv_used"] <= SERVER_CONNECTIONS for pool in pools)
    assert sum(row["total_xact_count"] for name, row in stats.items() if name != "pgbouncer") > 100
