"""`/health/`: can this process reach its database and its broker? JSON for probes and people.

`unavailable` (503) when a dependency is down; `degraded` (200: the process works, so a load
balancer keeps it) when something needs an operator, each with its reason: Stripe events parked
after three days of failed processing, a change waiting for Stripe longer than
`HEALTH_MIRROR_BACKLOG_SECONDS`, or the circuit breaker holding Stripe calls back.
`/health/live` only says the process answers: a liveness probe that never touches a dependency.
"""

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.payments.webhooks.selectors import sync_health
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


def _stripe_side() -> dict:
    """What needs an operator although every dependency answers; each reason in words."""
    try:
        state = sync_health()
    except Exception as exc:  # noqa: BLE001 - the database check reports the cause
        reason = f"the state of the Stripe side could not be read ({exc.__class__.__name__})"
        return {"ok": False, "error": exc.__class__.__name__, "reasons": [reason]}
    reasons = []
    parked = state["webhooks"]["parked"]
    if parked:
        reasons.append(f"{parked} Stripe event(s) parked after three days of failures: not applied")
    backlog_age = state["mirror"]["oldest_pending_age_seconds"]
    if backlog_age > settings.HEALTH_MIRROR_BACKLOG_SECONDS:
        reasons.append(f"a change has waited {backlog_age:.0f} s to reach Stripe")
    if state["stripe"]["circuit_open_for"]:
        reasons.append("the circuit breaker holds Stripe calls back after repeated failures")
    return {
        "ok": not reasons,
        "reasons": reasons,
        "parked_events": parked,
        "mirror_backlog_age_seconds": round(backlog_age, 1),
        "circuit_open": bool(state["stripe"]["circuit_open_for"]),
    }


@never_cache
@require_GET
def health(request):
    checks = {"database": _timed(_check_database), "broker": _timed(_check_broker)}
    healthy = all(check["ok"] for check in checks.values())
    checks["stripe_side"] = _stripe_side()
    status = "ok" if checks["stripe_side"]["ok"] else "degraded"
    return JsonResponse(
        {"status": status if healthy else "unavailable", "reasons": checks["stripe_side"]["reasons"], "checks": checks},
        status=200 if healthy else 503,
    )


@never_cache
@require_GET
def liveness(request):
    """The process is up and serving; nothing else is asked (a dependency down is /health/'s business)."""
    return JsonResponse({"status": "alive"})
