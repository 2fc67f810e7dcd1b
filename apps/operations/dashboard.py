"""The admin's dashboard: how the business did over the last days, and how keeping Stripe in step is doing now.

Every number comes from the selectors the API's stats and `/health/` use, as aggregates in the database (a
fixed number of queries however many orders there are); the charts are SVG drawn here.
"""

from collections import defaultdict
from datetime import date, timedelta

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone

from apps.mail.money import money_format
from apps.mail.selectors import outbox_health
from apps.operations import charts
from apps.payments.orders.models import OrderStatus
from apps.payments.orders.selectors import payment_stats
from apps.payments.webhooks.selectors import sync_health

RANGES = (7, 30, 90)
DEFAULT_RANGE = 30
VIEW_PERMISSION = "payments.view_order"
STATUS_COLORS = {
    OrderStatus.PAID: "#2e7d32",
    OrderStatus.PARTIALLY_REFUNDED: "#8d6e63",
    OrderStatus.REFUNDED: "#6d4c41",
    OrderStatus.REVIEW: "#ba2121",
    OrderStatus.FAILED: "#c62828",
    OrderStatus.PENDING: "#f9a825",
    OrderStatus.EXPIRED: "#9e9e9e",
    OrderStatus.CANCELED: "#616161",
}


def _days(date_from: date, date_to: date) -> list[date]:
    return [date_from + timedelta(days=offset) for offset in range((date_to - date_from).days + 1)]


def _per_currency(rows: list[dict], days: list[date], value: str, currency: str = "currency") -> dict[str, list]:
    """{currency: [(day, amount) for every day]}, days without a row at zero."""
    by_currency: dict[str, dict[date, int]] = defaultdict(dict)
    for row in rows:
        by_currency[row[currency]][row["period"]] = row[value] or 0
    return {
        code: [(day.isoformat(), amounts.get(day, 0)) for day in days] for code, amounts in sorted(by_currency.items())
    }


def _money_charts(rows: list[dict], days: list[date], value: str) -> list[dict]:
    return [
        {
            "currency": code,
            "total": money_format(sum(amount for _, amount in points), code),
            "svg": charts.bar_chart(points, label=lambda amount, code=code: money_format(int(amount), code)),
        }
        for code, points in _per_currency(rows, days, value).items()
    ]


def _paid_share_per_day(rows: list[dict], days: list[date]) -> list[tuple[str, float]]:
    """The share of each day's orders that got paid, over every currency."""
    placed: dict[date, int] = defaultdict(int)
    paid: dict[date, int] = defaultdict(int)
    for row in rows:
        placed[row["period"]] += row["orders"]
        paid[row["period"]] += row["paid"]
    return [(day.isoformat(), paid[day] / placed[day] if placed[day] else 0.0) for day in days]


def _duration(age_seconds: float) -> str:
    """An age for people: `7 min`, `2 h`; `-` when nothing waits."""
    if not age_seconds:
        return "-"
    seconds = int(age_seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def dashboard_context(*, days_back: int) -> dict:
    date_to = timezone.localdate()
    date_from = date_to - timedelta(days=days_back - 1)
    days = _days(date_from, date_to)
    stats = payment_stats(date_from=date_from, date_to=date_to, granularity="day")
    by_status: dict[str, int] = defaultdict(int)
    for row in stats["by_status"]:
        by_status[row["status"]] += row["count"]
    health = sync_health()
    outbox = outbox_health()
    stripe = health["stripe"]
    return {
        "days_back": days_back,
        "ranges": RANGES,
        "date_from": date_from,
        "date_to": date_to,
        "revenue": _money_charts(stats["revenue"], days, "revenue"),
        "refunds": _money_charts(stats["refunds"], days, "refunded"),
        "totals": [
            row | {key: money_format(row[key], row["currency"]) for key in ("gross", "refunded", "net")}
            for row in stats["totals"]
        ],
        "orders_by_status": charts.share_bars(
            sorted(by_status.items(), key=lambda item: -item[1]), colors=STATUS_COLORS
        ),
        "order_count": sum(by_status.values()),
        "success_rate": charts.percent(stats["success_rate"]),
        "payment_success_rate": charts.percent(stats["payment_success_rate"]),
        "success_chart": charts.bar_chart(
            _paid_share_per_day(stats["orders"], days), label=charts.percent, color="#2e7d32"
        ),
        "failures": stats["failures_by_reason"][:5],
        "in_review": stats["in_review"],
        "books": stats["books"],
        "mirror": health["mirror"]["by_state"],
        "mirror_oldest_pending": _duration(health["mirror"]["oldest_pending_age_seconds"]),
        "webhooks": health["webhooks"],
        "webhook_lag": _duration(health["webhooks"]["oldest_waiting_age_seconds"]),
        "outbox": outbox["by_state"],
        "outbox_overdue": _duration(outbox["overdue_seconds"]),
        "stripe_rate": f"{stripe['requests_per_second']:.1f} / {stripe['limit_per_second']:g} per s",
        "stripe_budget_in_use": charts.percent(stripe["budget_in_use"]),
        "circuit": f"open for {stripe['circuit_open_for']:.0f} s more" if stripe["circuit_open_for"] else "closed",
        "circuit_open": bool(stripe["circuit_open_for"]),
    }


def may_view_dashboard(user) -> bool:
    return user.is_active and user.has_perm(VIEW_PERMISSION)


def dashboard_view(request):
    """The dashboard, for staff who may view orders (`payments.view_order`); `?days=7|30|90`."""
    if not may_view_dashboard(request.user):
        raise PermissionDenied
    try:
        days_back = int(request.GET.get("days", DEFAULT_RANGE))
    except ValueError:
        days_back = DEFAULT_RANGE
    if days_back not in RANGES:
        days_back = DEFAULT_RANGE
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        **dashboard_context(days_back=days_back),
    }
    return TemplateResponse(request, "admin/operations/dashboard.html", context)
