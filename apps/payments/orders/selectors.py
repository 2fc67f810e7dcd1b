"""Reads of orders and payments, and the stats an operator asks of them.

Operations and the health check read this module, which the contract "only payments talks to Stripe" keeps
free of Stripe's libraries: nothing here imports them."""

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, NullIf, TruncDay, TruncMonth, TruncWeek

from apps.catalog import selectors as catalog_selectors
from apps.payments.orders.models import BooksCheck, Order, OrderRefund, OrderStatus, Payment, PaymentStatus
from config.days import days_between


def prices_on_sale(*, price_ids: list[int]) -> dict[int, int]:
    """The unit amount of each of these prices that is on sale now (active, of an active product)."""
    on_sale = catalog_selectors.price_list().filter(pk__in=price_ids)
    return dict(on_sale.values_list("pk", "unit_amount"))


def order_list(*, user, everyone: bool = False) -> QuerySet[Order]:
    """Orders with their lines: all of them for `everyone`, else the user's own (none without a user)."""
    found = Order.objects.prefetch_related("lines")
    if everyone:
        return found
    return found.filter(user=user) if user is not None else found.none()


def order_detail(*, order_id: int) -> Order:
    return Order.objects.prefetch_related("lines", "payments", "refunds", "transitions").get(pk=order_id)


def payment_list(*, user, everyone: bool = False) -> QuerySet[Payment]:
    """Payments with their order: all of them for `everyone`, else those of the user's own orders."""
    found = Payment.objects.select_related("order")
    if everyone:
        return found
    return found.filter(order__user=user) if user is not None else found.none()


# Orders Stripe took money for, whatever went back since.
PAID_STATUSES = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED)


FINISHED_STATUSES = (*PAID_STATUSES, OrderStatus.REVIEW, OrderStatus.FAILED, OrderStatus.EXPIRED, OrderStatus.CANCELED)


PAYMENT_SUCCEEDED = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)


PAYMENT_ENDED = (*PAYMENT_SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELED)


TRUNCATE = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _sum_by(rows, key: str, value: str) -> dict:
    totals: dict = defaultdict(int)
    for row in rows:
        totals[row[key]] += row[value] or 0
    return totals


@contextmanager
def _more_work_memory() -> Iterator[None]:
    """A month of a large shop's orders grouped by day, status and currency sorts some 40,000 rows, which
    PostgreSQL's default 4 MB of work memory spills to disk: half the stats' time with a million orders
    (`make bench-scale`). This transaction's queries get more."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL work_mem = '32MB'")
        yield


def payment_stats(*, date_from: date, date_to: date, granularity: str = "day") -> dict:
    """What an operator asks of a date range, in one grouped query per table: the API's stats and the admin's
    dashboard read it, so its cost stays flat as orders pile up (measured with a million orders by
    `make bench-scale`).

    Revenue is counted on the day Stripe took it (`paid_at`), refunds on the day they were made, orders on
    the day they were placed; amounts are minor units per currency, never summed across currencies.
    """
    with _more_work_memory():
        return _payment_stats(date_from, date_to, granularity)


def _payment_stats(date_from: date, date_to: date, granularity: str) -> dict:
    truncate = TRUNCATE[granularity]
    # Orders placed, by period, status and currency: the statuses, the order series and the success rate.
    placed = list(
        Order.objects.filter(**days_between("created_at", date_from, date_to))
        .annotate(period=truncate("created_at"))
        .values("period", "status", "currency")
        .annotate(count=Count("id"), amount_total=Sum("amount_total"), amount_refunded=Sum("amount_refunded"))
        .order_by()
    )
    # Paid orders by period and both currencies, read once: the revenue Stripe took (in the currency it charged)
    # and, by day, what orders brought in less what went back (in the order's currency).
    paid_rows = list(
        Order.objects.filter(status__in=PAID_STATUSES, **days_between("paid_at", date_from, date_to))
        .annotate(period=truncate("paid_at"))
        .values("period", "currency_charged", "currency")
        .annotate(orders=Count("id"), revenue=Sum("amount_charged"), net=Sum(F("amount_total") - F("amount_refunded")))
        .order_by()
    )
    revenue_series = _regrouped(paid_rows, "currency_charged", ("orders", "revenue"))
    # What went back is in the currency Stripe charged, which an order in review may not share.
    refund_series = list(
        OrderRefund.objects.filter(**days_between("created_at", date_from, date_to))
        .annotate(period=truncate("created_at"))
        .values("period", currency=F("order__currency_charged"))
        .annotate(refunds=Count("id"), refunded=Sum("amount"))
        .order_by("period", "currency")
    )
    payments = Payment.objects.filter(**days_between("created_at", date_from, date_to))
    attempts = payments.aggregate(
        succeeded=Count("id", filter=Q(status__in=PAYMENT_SUCCEEDED)),
        ended=Count("id", filter=Q(status__in=PAYMENT_ENDED)),
    )
    failures = (
        payments.exclude(failure_code="")
        .annotate(reason=Coalesce(NullIf("decline_code", Value("")), "failure_code"))
        .values("reason")
        .annotate(count=Count("id"))
        .order_by("-count", "reason")
    )
    books = latest_money_check()

    by_status: dict[tuple[str, str], dict] = {}
    by_period: dict[tuple, dict] = {}
    for row in placed:
        status = by_status.setdefault(
            (row["status"], row["currency"]),
            {"status": row["status"], "currency": row["currency"], "count": 0, "amount_total": 0, "amount_refunded": 0},
        )
        status["count"] += row["count"]
        status["amount_total"] += row["amount_total"] or 0
        status["amount_refunded"] += row["amount_refunded"] or 0
        period = by_period.setdefault(
            (row["period"], row["currency"]),
            {"period": row["period"].date(), "currency": row["currency"], "orders": 0, "paid": 0},
        )
        period["orders"] += row["count"]
        period["paid"] += row["count"] if row["status"] in PAID_STATUSES else 0
    paid = sum(row["count"] for row in placed if row["status"] in PAID_STATUSES)
    finished = sum(row["count"] for row in placed if row["status"] in FINISHED_STATUSES)
    gross = _sum_by(revenue_series, "currency_charged", "revenue")
    refunded = _sum_by(refund_series, "currency", "refunded")
    return {
        "date_from": date_from,
        "date_to": date_to,
        "granularity": granularity,
        "by_status": [by_status[key] for key in sorted(by_status)],
        "success_rate": _rate(paid, finished),
        "payment_success_rate": _rate(attempts["succeeded"], attempts["ended"]),
        "totals": [
            {
                "currency": currency,
                "gross": gross.get(currency, 0),
                "refunded": refunded.get(currency, 0),
                "net": gross.get(currency, 0) - refunded.get(currency, 0),
            }
            for currency in sorted(gross.keys() | refunded.keys())
        ],
        "revenue": [
            {
                "period": row["period"].date(),
                "currency": row["currency_charged"],
                "orders": row["orders"],
                "revenue": row["revenue"],
            }
            for row in revenue_series
        ],
        "refunds": [{**row, "period": row["period"].date()} for row in refund_series],
        # By day the paid rows hold it already; by week or month it is a query of its own.
        "revenue_per_day": (
            _net_per_day(_regrouped(paid_rows, "currency", ("orders", "net")))
            if granularity == "day"
            else net_revenue_per_day(date_from=date_from, date_to=date_to)
        ),
        "orders": [by_period[key] for key in sorted(by_period)],
        "failures_by_reason": list(failures),
        "in_review": Order.objects.filter(status=OrderStatus.REVIEW).count(),
        "drift_count": books["drift_count"] if books else None,
        "books": books,
    }


def _regrouped(rows: list[dict], currency: str, sums: tuple[str, ...]) -> list[dict]:
    """Rows of (period, both currencies) summed by period and one of the currencies, in that order."""
    grouped: dict[tuple, dict] = {}
    for row in rows:
        key = (row["period"], row[currency])
        into = grouped.setdefault(key, {"period": row["period"], currency: row[currency], **dict.fromkeys(sums, 0)})
        for name in sums:
            into[name] += row[name] or 0
    return [grouped[key] for key in sorted(grouped)]


def _net_per_day(rows: list[dict]) -> list[dict]:
    return [
        {"day": row["period"].date(), "currency": row["currency"], "orders": row["orders"], "revenue": row["net"]}
        for row in rows
    ]


def net_revenue_per_day(*, date_from: date, date_to: date) -> list[dict]:
    """Per day and order currency, what paid orders brought in less what went back."""
    paid = Order.objects.filter(status__in=PAID_STATUSES, **days_between("paid_at", date_from, date_to))
    return [
        {**row, "day": row["day"].date()}
        for row in paid.annotate(day=TruncDay("paid_at"))
        .values("day", "currency")
        .annotate(orders=Count("id"), revenue=Sum(F("amount_total") - F("amount_refunded")))
        .order_by("day", "currency")
    ]


def latest_money_check() -> dict | None:
    """The newest finished comparison of our books with Stripe's: its range and what disagreed."""
    check = BooksCheck.objects.filter(finished_at__isnull=False).order_by("-finished_at").first()
    if check is None:
        return None
    return {
        "checked_at": check.finished_at,
        "since": check.since,
        "until": check.until,
        "drift_count": check.drift_count,
        "complete": not check.error,
    }
