"""Reads of the payments side."""

from django.db.models import QuerySet

from apps.catalog import selectors as catalog_selectors
from apps.payments.models import MirrorKind, MirrorRecord, Order, Payment, WebhookEvent, WebhookEventState


def stripe_price_id(*, price_id: int) -> str | None:
    """The Stripe price that mirrors a local price now (amount changes make new ones)."""
    return (
        MirrorRecord.objects.filter(kind=MirrorKind.PRICE, object_id=price_id)
        .exclude(stripe_id="")
        .values_list("stripe_id", flat=True)
        .first()
    )


def parked_webhook_event_count() -> int:
    """Stripe events whose processing failed for three days: what they said is not applied."""
    return WebhookEvent.objects.filter(state=WebhookEventState.FAILED).count()


def mirror_record_list(*, state: str | None = None, kind: str | None = None) -> QuerySet[MirrorRecord]:
    records = MirrorRecord.objects.all()
    if state:
        records = records.filter(state=state)
    if kind:
        records = records.filter(kind=kind)
    return records


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


def payment_stats(*, date_from, date_to) -> dict:
    """Orders created in [date_from, date_to]: counts and amounts by status and currency, the success
    rate of finished checkouts, and revenue (paid minus refunded) per day of payment."""
    from django.db.models import Count, F, Sum
    from django.db.models.functions import TruncDate

    from apps.payments.models import OrderStatus

    created = Order.objects.filter(created_at__date__gte=date_from, created_at__date__lte=date_to)
    by_status = [
        {**row, "amount_total": row["amount_total"] or 0, "amount_refunded": row["amount_refunded"] or 0}
        for row in created.values("status", "currency")
        .annotate(count=Count("id"), amount_total=Sum("amount_total"), amount_refunded=Sum("amount_refunded"))
        .order_by("status", "currency")
    ]
    paid_statuses = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED)
    finished_statuses = (
        *paid_statuses,
        OrderStatus.REVIEW,
        OrderStatus.FAILED,
        OrderStatus.EXPIRED,
        OrderStatus.CANCELED,
    )
    paid = created.filter(status__in=paid_statuses).count()
    finished = created.filter(status__in=finished_statuses).count()
    revenue = (
        Order.objects.filter(paid_at__date__gte=date_from, paid_at__date__lte=date_to, status__in=paid_statuses)
        .annotate(day=TruncDate("paid_at"))
        .values("day", "currency")
        .annotate(orders=Count("id"), revenue=Sum(F("amount_total") - F("amount_refunded")))
        .order_by("day", "currency")
    )
    return {
        "date_from": date_from,
        "date_to": date_to,
        "by_status": by_status,
        "success_rate": round(paid / finished, 4) if finished else None,
        "revenue_per_day": list(revenue),
        "in_review": Order.objects.filter(status=OrderStatus.REVIEW).count(),
    }
