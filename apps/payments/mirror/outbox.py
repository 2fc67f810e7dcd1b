"""Recording that Stripe must follow a local change, and queueing the push.

Receivers call `mirror_record_change` inside the write's transaction: the object's
mirror row gets a new version and a task is queued once the transaction commits.
A task that is lost (a broker down at commit, a killed worker) leaves a pending row
that `requeue_stale` queues again from the beat.
"""

from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Subquery
from django.utils import timezone

from apps.catalog.models import Price
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from config.task_base import queue_task, queue_task_on_commit

# The name every message of the sync task carries (`mirror.tasks`), kept from when all of payments' tasks lived
# in one module: messages queued before an upgrade, the queue routes and the metrics know it by this name.
MIRROR_SYNC_TASK = "apps.payments.tasks.mirror_sync_task"

# Set while a change that came from Stripe (a webhook) is applied locally: Stripe holds it already,
# so the new version counts as synced and nothing is sent back (no echo, no loop).
_from_stripe: ContextVar[bool] = ContextVar("changes_from_stripe", default=False)


@contextmanager
def changes_from_stripe():
    token = _from_stripe.set(True)
    try:
        yield
    finally:
        _from_stripe.reset(token)


def mirror_record_change(*, kind: str, object_id: int, deleted: bool = False, queue: bool = True) -> None:
    """Note that the object changed and (with `queue`) queue its mirroring once the transaction commits."""
    if not settings.STRIPE_MIRROR_ENABLED:
        return
    from_stripe = _from_stripe.get()
    record_id, existed = _record_new_version(kind=kind, object_id=object_id, deleted=deleted, from_stripe=from_stripe)
    if from_stripe or not queue or (kind == MirrorKind.PRICE and _product_on_its_way(object_id)):
        return
    # A change waits a moment so that quick successive edits leave as one update; a creation goes at once.
    delay = settings.MIRROR_COALESCE_SECONDS if existed else 0
    queue_task_on_commit(MIRROR_SYNC_TASK, record_id, countdown=delay)


def _record_new_version(*, kind: str, object_id: int, deleted: bool, from_stripe: bool) -> tuple[int, bool]:
    """The object's mirror row made, or its version bumped, in one statement (an upsert: no read first, and no
    savepoint for the race of two first writes). Returns the row's id and whether it existed."""
    now = timezone.now()
    made = MirrorRecord(
        kind=kind,
        object_id=object_id,
        deleted=deleted,
        pending_since=None if from_stripe else now,
        synced_version=1 if from_stripe else 0,
        state=MirrorState.SYNCED if from_stripe else MirrorState.PENDING,
    )
    fields = [field for field in MirrorRecord._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    table = quote(MirrorRecord._meta.db_table)

    def held(column: str) -> str:  # the row as it was before this change
        return f"{table}.{quote(column)}"

    moment = MirrorRecord._meta.get_field("updated_at").get_db_prep_save(now, connection)
    # As `rows.update(version=F("version") + 1, ...)` would: every expression reads the row as it was.
    changes, params = [f"version = {held('version')} + 1", "updated_at = %s"], [moment]
    if from_stripe:
        changes += [f"synced_version = {held('version')} + 1", "state = %s", "pending_since = NULL", "synced_at = %s"]
        params += [MirrorState.SYNCED, moment]
    else:
        # Pending since the first change Stripe has not seen yet, not since the latest.
        changes += [
            "state = %s",
            f"pending_since = CASE WHEN {held('state')} = %s AND {held('pending_since')} IS NOT NULL "
            f"THEN {held('pending_since')} ELSE %s END",
        ]
        params += [MirrorState.PENDING, MirrorState.PENDING, moment]
    if deleted:
        changes.append("deleted = %s")
        params.append(True)
    columns, placeholders = ", ".join(quote(field.column) for field in fields), ", ".join(["%s"] * len(fields))
    # Table and column names come from the model; values are parameters.
    statement = (
        f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) "  # noqa: S608
        f"ON CONFLICT ({quote('kind')}, {quote('object_id')}) DO UPDATE SET {', '.join(changes)} "
        f"RETURNING {quote('id')}, {quote('version')}"
    )
    values = [field.get_db_prep_save(field.pre_save(made, add=True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(statement, [*values, *params])
        record_id, version = cursor.fetchone()
    return record_id, version > 1  # a new row starts at version 1


def _product_on_its_way(price_id: int) -> bool:
    """The price's product is being created in Stripe: its task carries the price along or releases it after.

    The product's row is locked until this transaction ends, so its task cannot record the product as in
    Stripe in between: either it did before (and the price is queued here), or it does after this price's
    row is committed, and releases it then (`release_waiting_prices`). No interleaving leaves the price asleep.
    """
    product_id = Price.objects.filter(pk=price_id).order_by().values("product_id")
    with transaction.atomic(savepoint=False):  # the write's own transaction; a lone call gets one of its own
        return (
            MirrorRecord.objects.select_for_update()
            .filter(kind=MirrorKind.PRODUCT, object_id=Subquery(product_id), state=MirrorState.PENDING, stripe_id="")
            .exists()
        )


def release_waiting_prices(product_record: MirrorRecord) -> None:
    """Prices that waited for their product go once it is in Stripe (or fail once it cannot be).

    Called after the product's row is committed: a price recorded meanwhile found the product still on
    its way and is found here."""
    if product_record.kind != MirrorKind.PRODUCT:
        return
    waiting = MirrorRecord.objects.filter(
        kind=MirrorKind.PRICE,
        state=MirrorState.PENDING,
        object_id__in=Price.objects.filter(product_id=product_record.object_id).values("pk"),
    )
    for record_id in waiting.values_list("pk", flat=True):
        queue_task_on_commit(MIRROR_SYNC_TASK, record_id)


def enqueue(record_id: int, delay: float = 0) -> None:
    queue_task(MIRROR_SYNC_TASK, record_id, countdown=delay)


def mirror_again(*, record: MirrorRecord, queue: bool = True) -> None:
    """An operator's retry: a new version, so Stripe does not replay the failure it remembers."""
    with transaction.atomic():
        mirror_record_change(kind=record.kind, object_id=record.object_id, deleted=record.deleted, queue=queue)


def requeue_stale(*, older_than: timedelta) -> int:
    """Queue rows left pending (a lost message, a broker down at commit, a killed worker's lease)."""
    now = timezone.now()
    stale = MirrorRecord.objects.filter(state=MirrorState.PENDING, pending_since__lt=now - older_than).exclude(
        lease_until__gt=now
    )
    ids = list(stale.values_list("pk", flat=True)[:1000])
    for record_id in ids:
        enqueue(record_id)
    return len(ids)


def mirror_give_up(*, record_id: int, message: str) -> None:
    MirrorRecord.objects.filter(pk=record_id).update(
        state=MirrorState.FAILED, last_error=message, lease_owner="", lease_until=None, updated_at=timezone.now()
    )
