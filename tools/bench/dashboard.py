"""`make bench-dashboard`: the admin dashboard's time and queries, empty and with 100,000 orders, as JSON.

The orders (with their payments and some refunds) are spread over the last 120 days and bulk-inserted into a
database of their own; the page is then asked for, over every range it offers (the widest covers three
quarters of the orders), by an operator who holds only the permission to view orders (not a superuser: their
permission checks are part of the page's cost), through Django's test client, in this process, on
production's settings (persistent connection, DEBUG off): what is timed is the view, its queries and its
template, not an HTTP server. Each range is measured in `--repeat` rounds (3: median, min and max); it exits
with 1 when any range's median p95 misses the target or the full page asks more queries than the empty one.
"""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tools.bench.mirror import PASSWORD, PRODUCTION, _prepare_database  # noqa: E402

TARGET_MS = 300
DAYS_SPREAD = 120
BATCH = 5000


def _setup_django(database_url: str) -> None:
    os.environ.update(
        {**PRODUCTION, "DATABASE_URL": database_url, "DJANGO_ALLOWED_HOSTS": "testserver", "LOG_LEVEL": "ERROR"}
    )
    import django

    django.setup()


def _fill(orders: int, seed: int) -> dict:
    """`orders` orders of three currencies and every status, a payment for each paid one, a refund for 5%."""
    from django.db import connection
    from django.utils import timezone

    from apps.payments.orders.models import Order, OrderRefund, OrderStatus, Payment, PaymentStatus
    from apps.users.models import User

    rng = random.Random(seed)  # noqa: S311 - reproducible data, not secrets
    now = timezone.now()
    unusable = "!"  # Django's mark of a password no one can log in with
    buyers = User.objects.bulk_create([User(email=f"buyer{n}@bench.example", password=unusable) for n in range(200)])
    statuses = [OrderStatus.PAID] * 70 + [OrderStatus.PENDING] * 8 + [OrderStatus.EXPIRED] * 12
    statuses += [OrderStatus.FAILED] * 5 + [OrderStatus.CANCELED] * 3 + [OrderStatus.REFUNDED] * 2
    started = time.perf_counter()
    made = 0
    while made < orders:
        batch, placed_at = [], []
        for _ in range(min(BATCH, orders - made)):
            status = rng.choice(statuses)
            created = now - timedelta(seconds=rng.randrange(DAYS_SPREAD * 86400))
            amount = rng.randrange(500, 50000)
            currency = rng.choice(("eur", "eur", "usd", "gbp"))
            paid = status in (OrderStatus.PAID, OrderStatus.REFUNDED)
            placed_at.append(created)
            batch.append(
                Order(
                    user=rng.choice(buyers),
                    email="buyer@bench.example",
                    status=status,
                    currency=currency,
                    amount_total=amount,
                    amount_charged=amount if paid else 0,
                    currency_charged=currency if paid else "",
                    amount_refunded=amount if status == OrderStatus.REFUNDED else 0,
                    paid_at=created + timedelta(minutes=2) if paid else None,
                )
            )
        saved = Order.objects.bulk_create(batch, batch_size=BATCH)
        Payment.objects.bulk_create(
            [
                Payment(
                    order=order,
                    payment_intent_id=f"pi_bench_{order.pk}",
                    status=PaymentStatus.SUCCEEDED if order.paid_at else PaymentStatus.FAILED,
                    amount=order.amount_total,
                    currency=order.currency,
                    decline_code="" if order.paid_at else rng.choice(("insufficient_funds", "generic_decline")),
                    failure_code="" if order.paid_at else "card_declined",
                )
                for order in saved
                if order.status in (OrderStatus.PAID, OrderStatus.REFUNDED, OrderStatus.FAILED)
            ],
            batch_size=BATCH,
        )
        refunded = [order for order in saved if order.paid_at and rng.random() < 0.05]
        OrderRefund.objects.bulk_create(
            [OrderRefund(order=order, stripe_refund_id=f"re_bench_{order.pk}", amount=500) for order in refunded],
            batch_size=BATCH,
        )
        # `created_at` is set on insert (auto_now_add): spread it back over the days it was drawn for.
        with connection.cursor() as cursor:
            cursor.executemany(
                "UPDATE payments_order SET created_at = %s WHERE id = %s",
                [(created, order.pk) for order, created in zip(saved, placed_at, strict=True)],
            )
        made += len(batch)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE payments_payment p SET created_at = o.created_at FROM payments_order o WHERE p.order_id = o.id"
        )
        cursor.execute(
            "UPDATE payments_orderrefund r SET created_at = o.paid_at FROM payments_order o WHERE r.order_id = o.id"
        )
        cursor.execute("ANALYZE")
    return {
        "orders": Order.objects.count(),
        "payments": Payment.objects.count(),
        "refunds": OrderRefund.objects.count(),
        "days": DAYS_SPREAD,
        "fill_seconds": round(time.perf_counter() - started, 1),
    }


def _operator():
    """Staff who may see the dashboard and nothing more."""
    from django.contrib.auth.models import Permission

    from apps.operations.dashboard import VIEW_PERMISSION
    from apps.users.models import User

    app_label, codename = VIEW_PERMISSION.split(".")
    operator = User.objects.create_user(email="operator@bench.example", password=PASSWORD, is_staff=True)
    operator.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return operator


def _measure(client, requests: int, days: int) -> dict:
    from django.db import connection

    queries: list[float] = []

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries.append((time.perf_counter() - started) * 1000)

    def dashboard():
        answer = client.get(f"/admin/dashboard/?days={days}")
        if answer.status_code != 200:
            raise SystemExit(f"the dashboard answered {answer.status_code} for the last {days} days")

    dashboard()  # the connection opened, the templates compiled
    with connection.execute_wrapper(timed):
        dashboard()
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        dashboard()
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {
        "queries": len(queries),
        "p50_ms": round(statistics.median(timings), 1),
        "p95_ms": round(timings[int(len(timings) * 0.95) - 1], 1),
        "max_ms": round(timings[-1], 1),
        "slowest_query_ms": round(max(queries), 1),
        "all_queries_ms": round(sum(queries), 1),
    }


def _rounds(client, args, days: int) -> dict:
    """`args.repeat` rounds of `args.requests` requests: each figure's median over the rounds, with its range."""
    from tools.bench.verdict import spread_each

    return spread_each([_measure(client, args.requests, days) for _ in range(args.repeat)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20, help="requests in each round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each range (median, min, max)")
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()

    database_url = _prepare_database("bench_dashboard")
    _setup_django(database_url)
    from django.core.management import call_command
    from django.test import Client

    from apps.operations.dashboard import RANGES
    from tools.bench.verdict import finish

    call_command("collectstatic", "--no-input", verbosity=0)  # production serves the admin's hashed files
    client = Client()
    client.force_login(_operator())
    empty = {days: _rounds(client, args, days) for days in RANGES}
    filled = _fill(args.orders, args.seed)
    full = {days: _rounds(client, args, days) for days in RANGES}
    report = {
        "benchmark": "dashboard",
        "setup": {
            "page": "/admin/dashboard/?days=N, as an operator with payments.view_order only",
            "orders": args.orders,
            "requests_each_round": args.requests,
            "rounds": args.repeat,
        },
        "data": filled,
        "empty": {f"last_{days}_days": empty[days] for days in RANGES},
        "with_orders": {f"last_{days}_days": full[days] for days in RANGES},
        "target_p95_ms": TARGET_MS,
    }
    checks = {
        f"p95_under_{TARGET_MS}ms_over_the_last_{days}_days": full[days]["p95_ms"]["median"] < TARGET_MS
        for days in RANGES
    }
    # The page asks the same questions whatever the data: its queries do not grow with the orders.
    checks["as_many_queries_full_as_empty"] = all(
        full[days]["queries"]["max"] == empty[days]["queries"]["max"] for days in RANGES
    )
    return finish(report, checks, database_url)


if __name__ == "__main__":
    sys.exit(main())
