"""Reads of the webhook intake, and how everything that keeps Stripe in step is doing now."""

from datetime import datetime

from django.db.models import Count

from apps.payments.gateway.circuit_breaker import circuit_breaker
from apps.payments.gateway.rate_budget import rate_budget
from apps.payments.mirror.selectors import mirror_health
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from config.days import seconds_since


def webhook_events_before_count(*, before: datetime) -> int:
    """Stored events received before `before`, whatever their state."""
    return WebhookEvent.objects.filter(received_at__lt=before).count()


def webhook_health() -> dict:
    """Stripe's events waiting to be processed, how long the oldest has waited, and the parked ones."""
    unsettled = WebhookEvent.objects.filter(state__in=(WebhookEventState.RECEIVED, WebhookEventState.FAILED))
    waiting = dict(unsettled.order_by().values("state").annotate(n=Count("id")).values_list("state", "n"))
    oldest_waiting = (
        WebhookEvent.objects.filter(state=WebhookEventState.RECEIVED)
        .order_by("received_at")
        .values_list("received_at", flat=True)
        .first()
    )
    return {
        "waiting": waiting.get(WebhookEventState.RECEIVED, 0),
        "oldest_waiting": oldest_waiting,
        "oldest_waiting_age_seconds": seconds_since(oldest_waiting),
        "parked": waiting.get(WebhookEventState.FAILED, 0),
    }


def sync_health() -> dict:
    """How the parts that keep Stripe in step are doing, each answer one indexed query (or a Redis read): the
    mirror (local -> Stripe), the webhook intake (Stripe -> local), and the share of the Stripe request budget
    spent lately and whether the circuit breaker holds calls back. The health check, the dashboard and
    `/metrics` read it."""
    budget = rate_budget()
    return {
        "mirror": mirror_health(),
        "webhooks": webhook_health(),
        "stripe": {
            "requests_per_second": budget.requests_per_second(),
            "limit_per_second": budget.per_second,
            "budget_in_use": budget.in_use(),
            "circuit_open_for": circuit_breaker().open_for(),
        },
    }
