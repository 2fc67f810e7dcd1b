"""`/metrics` for Prometheus: what every process counted (`config.metrics`), and what the database and Redis
hold right now (backlogs, ages, parked events, the outbox, the Stripe budget and circuit), read at each scrape.

Only a bearer of `METRICS_TOKEN` gets an answer; without a token configured the endpoint does not exist (404),
so a deployment that never thought of metrics exposes none.
"""

import hmac
import logging

from django.conf import settings
from django.http import Http404, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

import config.metrics  # noqa: F401 - the counters exist (and know their directory) before the first scrape
from apps.mail.selectors import outbox_health
from apps.payments.webhooks.selectors import sync_health

log = logging.getLogger("apps.operations.metrics")


class StateCollector:
    """Gauges read from the database and Redis at scrape time: the same answer from any process."""

    def collect(self):
        try:
            health = sync_health()
            outbox = outbox_health()
        except Exception:
            log.exception("metrics: the state could not be read")
            yield GaugeMetricFamily("state_up", "1 when the database and Redis state below could be read.", value=0)
            return
        yield GaugeMetricFamily("state_up", "1 when the database and Redis state below could be read.", value=1)

        mirror = GaugeMetricFamily("mirror_rows", "Mirror rows (users, products, prices) by state.", labels=["state"])
        for state, count in health["mirror"]["by_state"].items():
            mirror.add_metric([state], count)
        yield mirror
        yield GaugeMetricFamily(
            "mirror_oldest_pending_age_seconds",
            "How long the oldest change still waiting for Stripe has waited (0 when none waits).",
            value=health["mirror"]["oldest_pending_age_seconds"],
        )
        webhooks = health["webhooks"]
        yield GaugeMetricFamily("webhook_events_waiting", "Stored events not processed yet.", value=webhooks["waiting"])
        yield GaugeMetricFamily(
            "webhook_oldest_waiting_age_seconds",
            "How long the oldest unprocessed event has waited since it was received.",
            value=webhooks["oldest_waiting_age_seconds"],
        )
        yield GaugeMetricFamily(
            "webhook_events_parked",
            "Events parked after three days of failures: not applied.",
            value=webhooks["parked"],
        )
        messages = GaugeMetricFamily(
            "outbox_messages", "Outgoing mail waiting, being sent or failed; sent_lately: in 24 h.", labels=["state"]
        )
        for state, count in outbox["by_state"].items():
            messages.add_metric([state], count)
        yield messages
        yield GaugeMetricFamily(
            "outbox_oldest_due_age_seconds",
            "How overdue the oldest queued message is.",
            value=outbox["overdue_seconds"],
        )
        stripe = health["stripe"]
        yield GaugeMetricFamily(
            "stripe_budget_in_use_ratio",
            "Share of the Stripe request budget (STRIPE_RATE_LIMIT_PER_SECOND) spent over the last 10 s.",
            value=stripe["budget_in_use"],
        )
        yield GaugeMetricFamily(
            "stripe_circuit_open",
            "1 while the circuit breaker holds Stripe calls back.",
            value=int(bool(stripe["circuit_open_for"])),
        )


def _registry() -> CollectorRegistry:
    if not settings.METRICS_DIR:
        registry = REGISTRY  # this process's own counters
    else:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=settings.METRICS_DIR)
    combined = CollectorRegistry()
    combined.register(_Snapshot(registry))
    combined.register(StateCollector())
    return combined


class _Snapshot:
    """Another registry's metrics (every process's counters), served beside the state read at the scrape."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()


def _authorized(request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), settings.METRICS_TOKEN.encode())


@never_cache
@require_GET
def metrics_view(request):
    if not settings.METRICS_TOKEN:
        raise Http404("metrics are off: set METRICS_TOKEN")
    if not _authorized(request):
        response = HttpResponse("a bearer token is required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
