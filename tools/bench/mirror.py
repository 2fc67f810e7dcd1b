"""`make bench-mirror`: the mirror's throughput against Stripe's live rate limits, as JSON.

2,000 products, each created together with one price in one transaction through the
catalog services, and 1,000 users, mirrored by two Celery workers into the Stripe
emulator with its limiter at Stripe's live limits (100/s account, 25/s per endpoint)
and the budget configured to match. Runs on a database of its own (kept between runs,
emptied at the start of each round), Redis databases 11 and 12, and an emulator started for
each round; `--repeat` rounds (3: median, min and max).
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tools.bench.cpu import CpuMeter, descendants, named  # noqa: E402
from tools.bench.emulator import _free_port, _start_emulator  # noqa: E402
from tools.bench.verdict import finish, spread  # noqa: E402

API_KEY = "sk_test_benchmarkKey00000000000000000"
ACCOUNT_LIMIT, ENDPOINT_LIMIT = 100, 25
BROKER_URL = "redis://127.0.0.1:6379/12"
BUDGET_URL = "redis://127.0.0.1:6379/11"
PASSWORD = "bench-passphrase-long-enough"  # noqa: S105 - the benchmark's throwaway users


# The processes measured run the production settings (persistent database connections, DEBUG off),
# through the benchmarks' own module that lets them start against the emulator.
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "tools.bench.settings",
    "DJANGO_SECRET_KEY": "benchmark-only-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH",
    "JWT_SIGNING_KEY": "benchmark-only-jwt-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABC",
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "LOG_LEVEL": "WARNING",
}


def _environment(database_url: str, emulator_url: str) -> dict[str, str]:
    return {
        **PRODUCTION,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": BROKER_URL,
        "COORDINATION_REDIS_URL": BUDGET_URL,
        "STRIPE_API_BASE": emulator_url,
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_MIRROR_ENABLED": "true",
        "STRIPE_RATE_LIMIT_PER_SECOND": str(ACCOUNT_LIMIT),
        "STRIPE_RATE_LIMIT_PER_ENDPOINT": str(ENDPOINT_LIMIT),
    }


def _prepare_database(name: str) -> str:
    """A database of the current schema: created (migrated) the first time, emptied afterwards."""
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgres:///{name}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": url}
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run([*manage, "flush", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
    return url


IDLE_QUEUE = "bench-idle"  # what workers read until they are told to start: their start-up is not measured


def _start_workers(count: int, concurrency: int, pool: str, env: dict[str, str]) -> list[subprocess.Popen]:
    workers = []
    for n in range(count):
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", pool,
            "--concurrency", str(concurrency), "--hostname", f"bench{n}@%h", "--loglevel", "WARNING",
            "--without-heartbeat", "--without-mingle", "--without-gossip", "--queues", IDLE_QUEUE,
        ]  # fmt: skip
        # Only the JSON report goes to stdout.
        workers.append(
            subprocess.Popen(
                command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
    return workers


def _worker_names(workers: list[subprocess.Popen]) -> list[str]:
    import socket

    return [f"bench{n}@{socket.gethostname()}" for n in range(len(workers))]


def wait_ready(workers: list[subprocess.Popen]) -> None:
    from config.celery import app

    deadline = time.time() + 60
    while len(app.control.ping(destination=_worker_names(workers), timeout=0.5)) < len(workers):
        if time.time() > deadline:
            raise RuntimeError("the workers did not start within 60 s")


def start_consuming(workers: list[subprocess.Popen], queues: tuple[str, ...]) -> None:
    """Point the (ready) workers at `queues`."""
    from config.celery import app

    for queue in queues:
        app.control.add_consumer(queue, destination=_worker_names(workers), reply=True)


def cpu_meter(workers: list[subprocess.Popen], emulator: subprocess.Popen, **others):
    """CPU of the workers, the emulator, PostgreSQL and Redis (all of the machine's, as nothing else runs)."""
    return CpuMeter(
        {
            "workers": lambda: [pid for worker in workers for pid in descendants(worker.pid)],
            "emulator": lambda: descendants(emulator.pid),
            "postgresql": lambda: named("postgres"),
            "redis": lambda: named("redis-server"),
            **others,
        }
    )


def _stripe_side(emulator_url: str) -> dict[str, Counter]:
    import stripe

    client = stripe.StripeClient(API_KEY, base_addresses={"api": emulator_url})
    counts = {}
    for resource in ("customers", "products", "prices"):
        refs = Counter()
        for obj in getattr(client.v1, resource).list(params={"limit": 100}).auto_paging_iter():
            ref = (obj.metadata or {}).get("app_ref")
            if ref and not getattr(obj, "deleted", False):
                refs[ref] += 1
        counts[resource] = refs
    return counts


def _control(url: str, method: str, path: str, body: dict | None = None) -> dict:
    import requests

    response = requests.request(method, f"{url}/_emulator/{path}", json=body, timeout=60)
    response.raise_for_status()
    return response.json()


def _rate(entries: list[dict]) -> float:
    if len(entries) < 2:
        return 0.0
    span = max(e["at"] for e in entries) - min(e["at"] for e in entries)
    return (len(entries) - 1) / span if span else 0.0


def _round(args) -> tuple[dict, dict[str, bool], str]:
    """One run from a fresh emulator and an empty database: the round's report, its checks, the database."""
    import redis

    for url in (BROKER_URL, BUDGET_URL):
        redis.Redis.from_url(url).flushdb()
    port = _free_port()
    emulator = _start_emulator(port)
    emulator_url = f"http://127.0.0.1:{port}"
    _control(
        emulator_url, "POST", "rate_limit", {"per_second": ACCOUNT_LIMIT, "per_endpoint_per_second": ENDPOINT_LIMIT}
    )
    database_url = _prepare_database("bench_commerce")
    env = _environment(database_url, emulator_url)
    # This process only queues the work; password hashing at production cost is not what is measured.
    os.environ.update({**env, "DJANGO_SETTINGS_MODULE": "config.settings.test"})
    import django

    django.setup()
    from django.db import transaction

    from apps.catalog import services as catalog
    from apps.payments.mirror.models import MirrorRecord, MirrorState
    from apps.users import services as users

    # All the work is queued first (workers not yet running), then drained: the
    # measure is how fast the mirror empties a full queue, not how fast we create.
    creating = time.time()
    for n in range(max(args.products, args.users)):
        if n < args.products:
            with transaction.atomic():
                product = catalog.product_create(name=f"Bench product {n}")
                catalog.price_create(product=product, unit_amount=100 + n, currency="usd")
        if n < args.users:
            users.user_create(email=f"bench{n}@example.com", password=PASSWORD, name=f"Bench {n}")
    created = time.time()
    expected = args.products * 2 + args.users
    workers = _start_workers(args.workers, args.concurrency, args.pool, env)
    try:
        wait_ready(workers)
        meter = cpu_meter(workers, emulator).start()
        # The mirror's own queue: the welcome mail the users' registration queued is the mail worker's work.
        start_consuming(workers, ("mirror",))
        started = time.time()
        deadline = started + args.timeout
        while time.time() < deadline:
            if not MirrorRecord.objects.filter(state=MirrorState.PENDING).exists():
                break
            meter.sample()
            time.sleep(0.5)
        finished = time.time()
        cpu = meter.seconds()
        states = Counter(MirrorRecord.objects.values_list("state", flat=True))
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)

    seen = _control(emulator_url, "GET", "requests")["data"]
    _control(emulator_url, "DELETE", "rate_limit")  # counting Stripe's side must not be throttled
    stripe_side = _stripe_side(emulator_url)
    emulator.send_signal(signal.SIGTERM)
    emulator.wait(timeout=10)

    by_endpoint = Counter(f"{e['method']} {e['endpoint']}" for e in seen)
    rejected = [e for e in seen if e["status"] == 429]
    writes = [e for e in seen if e["method"] == "POST" and e["status"] == 200]
    catalog_writes = sum(1 for e in writes if e["endpoint"].startswith(("/v1/products", "/v1/prices")))
    customer_writes = sum(1 for e in writes if e["endpoint"].startswith("/v1/customers"))
    product_posts = [e for e in writes if e["endpoint"] == "/v1/products"]
    customer_posts = [e for e in writes if e["endpoint"] == "/v1/customers"]
    duplicates = sum(count - 1 for refs in stripe_side.values() for count in refs.values() if count > 1)
    lost = expected - sum(len(refs) for refs in stripe_side.values())
    elapsed = finished - started
    account_rate = _rate([e for e in seen if e["status"] == 200])
    synced = states.get(MirrorState.SYNCED, 0)
    report = {
        "seconds": {"queueing_locally": round(created - creating, 1), "until_all_mirrored": round(elapsed, 1)},
        "objects_mirrored": synced,
        "objects_per_second": round(synced / elapsed, 1),
        "rows_by_state": dict(states),
        "stripe_requests": len(seen),
        "stripe_requests_per_object": round(len(seen) / expected, 2),
        "stripe_requests_by_endpoint": dict(by_endpoint.most_common()),
        "write_requests_per_product_and_price": round(catalog_writes / args.products, 3) if args.products else None,
        "write_requests_per_user": round(customer_writes / args.users, 3) if args.users else None,
        "rate_limited_429": len(rejected),
        "achieved_per_second": {
            "account_all_requests": round(account_rate, 1),
            "POST /v1/products": round(_rate(product_posts), 1),
            "POST /v1/customers": round(_rate(customer_posts), 1),
        },
        "limit_used": {
            "account": round(account_rate / ACCOUNT_LIMIT, 3),
            "POST /v1/products": round(_rate(product_posts) / ENDPOINT_LIMIT, 3),
            "POST /v1/customers": round(_rate(customer_posts) / ENDPOINT_LIMIT, 3),
        },
        "cpu_seconds": cpu,
        "cpu_ms_per_object": {name: round(seconds * 1000 / max(synced, 1), 1) for name, seconds in cpu.items()},
        "duplicates": duplicates,
        "lost": lost,
    }
    checks = {
        "every_object_mirrored": synced == expected,
        "nothing_lost_in_stripe": lost == 0,
        "no_duplicate_in_stripe": duplicates == 0,
        "no_429_from_stripe": not rejected,
    }
    return report, checks, database_url


# What the summary gives as median, min and max over the rounds.
SUMMARISED = ("objects_per_second", "stripe_requests_per_object", "limit_used", "cpu_ms_per_object")


def _summary(rounds: list[dict]) -> dict:
    summary = {}
    for name in SUMMARISED:
        first = rounds[0][name]
        if isinstance(first, dict):
            summary[name] = {key: spread([one[name][key] for one in rounds]) for key in first}
        else:
            summary[name] = spread([one[name] for one in rounds])
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork"])
    parser.add_argument("--concurrency", type=int, default=8, help="threads (or processes) per worker")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--repeat", type=int, default=3, help="rounds, each from empty (median, min, max)")
    args = parser.parse_args()

    rounds, checks = [], {}
    for _ in range(args.repeat):
        report, held, database_url = _round(args)
        rounds.append(report)
        checks = {name: checks.get(name, True) and passed for name, passed in held.items()}
    report = {
        "benchmark": "mirror",
        "setup": {
            "products_with_one_price": args.products,
            "users": args.users,
            "workers": args.workers,
            "pool": args.pool,
            "concurrency_per_worker": args.concurrency,
            "stripe_limits": {"account_per_second": ACCOUNT_LIMIT, "endpoint_per_second": ENDPOINT_LIMIT},
            "budget": {"account_per_second": ACCOUNT_LIMIT, "endpoint_per_second": ENDPOINT_LIMIT},
            "rounds": args.repeat,
        },
        **_summary(rounds),
        "rounds": rounds,
    }
    return finish(report, checks, database_url)


if __name__ == "__main__":
    sys.exit(main())
