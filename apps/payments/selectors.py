"""Reads of the payments side."""

from django.db.models import QuerySet

from apps.payments.models import MirrorKind, MirrorRecord


def stripe_price_id(*, price_id: int) -> str | None:
    """The Stripe price that mirrors a local price now (amount changes make new ones)."""
    return (
        MirrorRecord.objects.filter(kind=MirrorKind.PRICE, object_id=price_id)
        .exclude(stripe_id="")
        .values_list("stripe_id", flat=True)
        .first()
    )


def mirror_record_list(*, state: str | None = None, kind: str | None = None) -> QuerySet[MirrorRecord]:
    records = MirrorRecord.objects.all()
    if state:
        records = records.filter(state=state)
    if kind:
        records = records.filter(kind=kind)
    return records
