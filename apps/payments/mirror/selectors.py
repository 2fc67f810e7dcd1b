"""Reads of the mirror: its rows, how many objects it keeps in Stripe, how far behind it is."""

from django.db.models import Count, QuerySet

from apps.payments.mirror.models import MirrorRecord, MirrorState
from apps.payments.mirror.specs import SPECS
from config.days import seconds_since


def mirror_record_list(*, state: str | None = None, kind: str | None = None) -> QuerySet[MirrorRecord]:
    records = MirrorRecord.objects.all()
    if state:
        records = records.filter(state=state)
    if kind:
        records = records.filter(kind=kind)
    return records


def mirror_record(*, record_id: int) -> MirrorRecord:
    """One mirror row as it stands now."""
    return MirrorRecord.objects.get(pk=record_id)


def mirrored_object_count(*, kind: str) -> int:
    """How many local objects of this kind the mirror keeps in Stripe (users, products or prices)."""
    return SPECS[kind].model.objects.count()


def mirror_health() -> dict:
    """The mirror's rows by state and the oldest change still waiting to reach Stripe (one indexed query each)."""
    by_state = dict(MirrorRecord.objects.order_by().values("state").annotate(n=Count("id")).values_list("state", "n"))
    oldest_pending = (
        MirrorRecord.objects.filter(state=MirrorState.PENDING)
        .order_by("pending_since")
        .values_list("pending_since", flat=True)
        .first()
    )
    return {
        "by_state": {state: by_state.get(state, 0) for state in MirrorState.values},
        "oldest_pending": oldest_pending,
        "oldest_pending_age_seconds": seconds_since(oldest_pending),
    }
