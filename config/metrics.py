"""The counters and histograms every process adds to, scraped at `/metrics` (see `apps.operations.metrics`).

Web requests are served by several gunicorn workers and tasks run in Celery's worker processes: each is its
own process, so each writes its numbers into small files under `METRICS_DIR` (prometheus_client's multiprocess
mode) and a scrape sums the files of every process on the machine. Files are named after the host and the
process, so web and worker containers can share one volume. Without `METRICS_DIR` the numbers stay in the
process (a single-process server, the tests' own process).

What the database and Redis already know (backlogs, ages, the circuit's state) is not counted here: it is read
when scraped, so every process reports the same truth.
"""

import os
import socket
import time

from django.conf import settings
from prometheus_client import Counter, Histogram, values

if settings.METRICS_DIR:
    os.makedirs(settings.METRICS_DIR, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.METRICS_DIR)  # where prometheus_client looks for it
    _HOST = socket.gethostname().replace("_", "-")
    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: f"{_HOST}-{os.getpid()}")

# Requests take milliseconds to seconds; webhooks are acknowledged in a few milliseconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A webhook waits for processing from milliseconds (a drain at hand) to hours (retries for three days).
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 3600.0, 86400.0)

HTTP_REQUESTS = Histogram(
    "http_request_duration_seconds",
    "Time to answer a request, by view (its URL name), method and status class.",
    ["view", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
STRIPE_REQUESTS = Counter(
    "stripe_requests_total",
    "Requests sent to Stripe, by endpoint (ids replaced by {id}) and HTTP status ('error': no answer).",
    ["endpoint", "status"],
)
STRIPE_BUDGET_WAIT = Counter(
    "stripe_budget_wait_seconds_total", "Seconds requests waited for the shared Stripe rate budget."
)
STRIPE_BUDGET_WAITS = Counter("stripe_budget_waits_total", "Requests that had to wait for the Stripe rate budget.")
STRIPE_BUDGET_SPENT = Counter(
    "stripe_budget_exhausted_total", "Requests given up because the Stripe budget had no room in time (retried later)."
)
STRIPE_CIRCUIT_REFUSED = Counter(
    "stripe_circuit_refused_total", "Requests not sent because the circuit breaker was open."
)
WEBHOOKS_RECEIVED = Counter(
    "webhook_deliveries_total",
    "Deliveries to /stripe/webhook/ by answer: stored, duplicate, invalid (signature), too_large, bad_request.",
    ["result"],
)
WEBHOOKS_PROCESSED = Counter(
    "webhook_events_processed_total",
    "Stored events processed, by type and state (processed, ignored, refused, retry, parked).",
    ["type", "state"],
)
WEBHOOK_LAG = Histogram(
    "webhook_processing_lag_seconds",
    "From an event's receipt to its processing.",
    buckets=LAG_BUCKETS,
)
MIRROR_SYNCS = Counter(
    "mirror_syncs_total",
    "Pushes of local objects to Stripe, by outcome (synced, nothing to do, waiting, failed, lease lost, conflict).",
    ["outcome"],
)
CELERY_TASKS = Counter(
    "celery_tasks_total", "Celery tasks run, by task and outcome (succeeded, failed, retried).", ["task", "outcome"]
)
CELERY_TASK_DURATION = Histogram(
    "celery_task_duration_seconds", "Time a Celery task ran, by task.", ["task"], buckets=LATENCY_BUCKETS
)


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetricsMiddleware:
    """Times every request through Django by the URL name it resolved to (`unmatched` when none did): names,
    not paths, so ids in paths never multiply the series."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match.route) if match else "unmatched"
        method = request.method if request.method in KNOWN_METHODS else "other"
        HTTP_REQUESTS.labels(view, method, f"{response.status_code // 100}xx").observe(time.perf_counter() - started)
        return response


_task_started: dict[str, float] = {}
_TASK_OUTCOMES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}


def task_started(task_id: str) -> None:
    _task_started[task_id] = time.perf_counter()


def task_finished(task_id: str, task_name: str, state: str | None) -> None:
    started = _task_started.pop(task_id, None)
    CELERY_TASKS.labels(task_name, _TASK_OUTCOMES.get(state or "", (state or "unknown").lower())).inc()
    if started is not None:
        CELERY_TASK_DURATION.labels(task_name).observe(time.perf_counter() - started)
