"""`make bench-webhooks`: acknowledging and processing Stripe events, against dj-stripe's stock view, as JSON.

5,000 signed `product.updated` events (20% of them duplicates, shuffled) are fired
at `/stripe/webhook/` by 16 concurrent clients (web under gunicorn, PostgreSQL,
Redis, two Celery workers). Then, in the same run, the first events' twins go to
dj-stripe's stock synchronous view (which fetches each object from Stripe inside
the request) with the same concurrency.
"""

import argparse
import json
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tools.bench.emulator import _free_port, _start_emulator  # noqa: E402
from tools.bench.mirror import BROKER_URL, BUDGET_URL, _environment, _prepare_database  # noqa: E402
from tools.bench.verdict import finish  # noqa: E402

API_KEY = "sk_test_benchmarkKey00000000000000000"
SECRET = "whsec_benchmarkSecret00000000000000000"  # noqa: S105 - signs the benchmark's own events


def _sign(payload: bytes) -> str:
    import hashlib
    import hmac

    timestamp = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_payload(event_id: str, obj: dict, event_type: str = "product.updated") -> bytes:
    """A Stripe event about `obj` as Stripe sends it."""
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2026-08-26.dahlia",
            "created": int(time.time()),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
    ).encode()


def _events(products: list[dict], unique: int, duplicates: int, prefix: str) -> list[bytes]:
    """`unique` product.updated events over the products, plus `duplicates` repeats, shuffled."""
    events = []
    for n in range(unique):
        product = products[n % len(products)]
        step = n // len(products) + 1
        obj = {**product, "name": f"{product['name']} v{step}", "updated": product["updated"] + step}
        events.append(event_payload(f"evt_{prefix}{n:06d}", obj))
    batch = events + random.sample(events, duplicates)
    random.shuffle(batch)
    return batch


def _fire_part(args) -> list[tuple[float, int]]:
    """One client process: `threads` threads posting their share of the events; (latency, status) each.

    Plain `http.client` with one kept-alive connection per thread: the client must cost
    little, since it shares the two cores with the server it measures.
    """
    import http.client
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    url, payloads, threads = args
    parts = urlsplit(url)
    local = threading.local()

    def post(payload: bytes) -> tuple[float, int]:
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        headers = {"Stripe-Signature": _sign(payload), "Content-Type": "application/json"}
        started = time.perf_counter()
        try:
            local.connection.request("POST", parts.path, body=payload, headers=headers)
            response = local.connection.getresponse()
            response.read()
        except (http.client.HTTPException, OSError):
            local.connection.close()  # the server closed a kept-alive connection: open a new one
            local.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            local.connection.request("POST", parts.path, body=payload, headers=headers)
            response = local.connection.getresponse()
            response.read()
        return time.perf_counter() - started, response.status

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(post, payloads))


def _fire(url: str, payloads: list[bytes], clients: int, processes: int = 2) -> tuple[dict, float]:
    parts = [(url, payloads[n::processes], clients // processes) for n in range(processes)]
    started = time.perf_counter()
    with multiprocessing.Pool(processes) as pool:
        results = [item for part in pool.map(_fire_part, parts) for item in part]
    elapsed = time.perf_counter() - started
    latencies = sorted(latency for latency, _ in results)
    statuses = {}
    for _, status in results:
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "events_sent": len(results),
        "statuses": statuses,
        "acknowledged_per_second": round(len(results) / elapsed, 1),
        "ack_latency_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "ack_latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
    }, elapsed


def stack_environment(emulator_url: str, database_url: str, drainers: int) -> dict[str, str]:
    """What the benchmarks' web and worker processes run with: production's settings, against the emulator."""
    return {
        **os.environ,
        **_environment(database_url, emulator_url),  # the mirror benchmark's, at Stripe's live limits
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_MIRROR_ENABLED": "false",
        "WEBHOOK_DRAINERS": str(drainers),
    }


# gunicorn as the benchmarks run it unless told otherwise: four processes of four threads.
WEB_OPTIONS = "--workers 4 --threads 4"


def start_web(env: dict[str, str], port: int, options: str = WEB_OPTIONS) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", *options.split()]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)


def start_workers(env: dict[str, str], count: int, concurrency: int = 1, queues: str = "") -> list[subprocess.Popen]:
    """`count` Celery workers (separate processes, as on separate machines), each of `concurrency` processes."""
    workers = []
    for n in range(count):
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "prefork",
            "--concurrency", str(concurrency), "--hostname", f"hook{n}@%h", "--loglevel", "WARNING",
            "--without-heartbeat", "--without-mingle", "--without-gossip",
            *(["--queues", queues] if queues else []),
        ]  # fmt: skip
        workers.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
        )
    return workers


def processing_of(prefix: str) -> dict:
    """How the events whose ids start with `prefix` were stored and processed (once processing is over)."""
    from apps.payments.webhooks.models import WebhookEvent, WebhookEventState

    rows = WebhookEvent.objects.filter(stripe_id__startswith=prefix)
    first_received = min(row.received_at for row in rows)
    last_processed = max(row.processed_at for row in rows if row.processed_at)
    processed = rows.filter(state=WebhookEventState.PROCESSED).count()
    return {
        "stored": rows.count(),
        "deliveries_recorded": sum(row.deliveries for row in rows),
        "processed": processed,
        "processed_per_second": round(processed / (last_processed - first_received).total_seconds(), 1),
        "events_retried": rows.filter(attempts__gt=1).count(),  # a handler that failed once; not duplicates
        "failed": rows.filter(state=WebhookEventState.FAILED).count(),
    }


def wait_processed(timeout: float = 600) -> bool:
    """Wait until no stored event waits for processing; False when some still wait after `timeout` seconds."""
    from apps.payments.webhooks.models import WebhookEvent, WebhookEventState

    deadline = time.time() + timeout
    while WebhookEvent.objects.filter(state=WebhookEventState.RECEIVED).exists():
        if time.time() > deadline:
            return False
        time.sleep(0.25)
    return True


def _wait_port(port: int) -> None:
    import socket

    for _ in range(300):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("the web server did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--duplicate-share", type=float, default=0.2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--stock-events", type=int, default=1000, help="events for dj-stripe's stock view")
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--gunicorn", default=WEB_OPTIONS, help="gunicorn options for the web server")
    parser.add_argument("--warmup", type=int, default=300, help="events sent first, not measured")
    parser.add_argument("--worker-concurrency", type=int, default=1, help="processes per Celery worker")
    parser.add_argument(
        "--drainers", type=int, default=1, help="WEBHOOK_DRAINERS: processing yields the two cores to acknowledgements"
    )
    args = parser.parse_args()

    import redis
    import stripe

    for url in (BROKER_URL, BUDGET_URL):
        redis.Redis.from_url(url).flushdb()
    emulator_port, web_port = _free_port(), _free_port()
    emulator = _start_emulator(emulator_port)
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    client = stripe.StripeClient(API_KEY, base_addresses={"api": emulator_url})
    products = [client.v1.products.create(params={"name": f"Bench {n}"}).to_dict() for n in range(args.products)]
    database_url = _prepare_database("bench_commerce")
    env = {
        **stack_environment(emulator_url, database_url, drainers=args.drainers),
        "DJANGO_ROOT_URLCONF": "tools.bench.webhook_urls",
        "STRIPE_RATE_LIMIT_PER_SECOND": "1000",
        "STRIPE_RATE_LIMIT_PER_ENDPOINT": "1000",
    }
    web = start_web(env, web_port, args.gunicorn)
    workers = start_workers(env, 2, args.worker_concurrency)
    os.environ.update({key: value for key, value in env.items() if key != "DJANGO_ROOT_URLCONF"})
    import django

    django.setup()
    from djstripe import models as djstripe_models

    try:
        _wait_port(web_port)
        time.sleep(2)
        unique = int(args.events / (1 + args.duplicate_share))
        ours_url = f"http://127.0.0.1:{web_port}/stripe/webhook/"
        # Every server thread opens its database connection on its first request: not part of the measure.
        _fire(ours_url, _events(products, args.warmup, 0, "warm"), args.clients)
        ours_events = _events(products, unique, args.events - unique, "ours")
        ours, _ = _fire(ours_url, ours_events, args.clients)
        wait_processed()
        ours.update({"unique_events": unique, **processing_of("evt_ours")})

        endpoint = djstripe_models.WebhookEndpoint.objects.create(
            id="we_bench_stock",
            secret=SECRET,
            url=f"http://127.0.0.1:{web_port}/djstripe/webhook/",
            enabled_events=["*"],
            status="enabled",
            api_version="2026-08-26.dahlia",
            livemode=False,
            djstripe_uuid=uuid.uuid4(),
        )
        stock_url = f"http://127.0.0.1:{web_port}/djstripe/webhook/{endpoint.djstripe_uuid}/"
        _fire(stock_url, _events(products, args.warmup // 3, 0, "stockwarm"), args.clients)
        stock, _ = _fire(stock_url, _events(products, args.stock_events, 0, "stock"), args.clients)
    finally:
        for process in (web, *workers):
            process.send_signal(signal.SIGTERM)
        for process in (web, *workers):
            process.wait(timeout=30)
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=10)

    report = {
        "benchmark": "webhooks",
        "setup": {
            "events": args.events,
            "duplicate_share": args.duplicate_share,
            "clients": args.clients,
            "web": f"gunicorn {args.gunicorn}",
            "worker_concurrency": args.worker_concurrency,
            "drainers": args.drainers,
            "celery_workers": 2,
            "event_type": "product.updated",
        },
        "ours": ours,
        "djstripe_stock_view": stock,
        "p99_ack_ratio_stock_over_ours": round(stock["ack_latency_p99_ms"] / ours["ack_latency_p99_ms"], 1),
    }
    checks = {
        "p99_ack_below_50ms": ours["ack_latency_p99_ms"] < 50,
        "at_least_5x_faster_than_the_stock_view_at_p99": stock["ack_latency_p99_ms"] / ours["ack_latency_p99_ms"] >= 5,
        "every_delivery_answered_200": ours["statuses"] == {200: ours["events_sent"]}
        and stock["statuses"] == {200: stock["events_sent"]},
        "every_event_stored_once": ours["stored"] == unique and ours["deliveries_recorded"] == args.events,
        "every_event_processed": ours["processed"] == unique and ours["failed"] == 0,
    }
    return finish(report, checks, database_url)


if __name__ == "__main__":
    sys.exit(main())
