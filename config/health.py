"""`/health/`: can this process reach its database and its broker? JSON for probes and people.

`unavailable` (503) when a dependency is down; `degraded` (200: the process works, so a load
balancer keeps it) when something needs an operator, such as Stripe events parked after three
days of failed processing.
"""

import time

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.payments.selectors import parked_webhook_event_count
from config.celery import app as celery_app

BROKER_TIMEOUT_SECONDS = 2


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - any failure is an unhealthy dependency
        return {"ok": False, "error": exc.__class__.__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> None:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)


def _webhook_events() -> dict:
    try:
        parked = parked_webhook_event_count()
    except Exception as exc:  # noqa: BLE001 - the database check reports the cause
        return {"ok": False, "error": exc.__class__.__name__}
    return {"ok": parked == 0, "parked": parked}


@never_cache
@require_GET
def health(request):
    checks = {"database": _timed(_check_database), "broker": _timed(_check_broker)}
    healthy = all(check["ok"] for check in checks.values())
    checks["webhook_events"] = _webhook_events()
    status = "ok" if checks["webhook_events"]["ok"] else "degraded"
    return JsonResponse(
        {"status": status if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )
