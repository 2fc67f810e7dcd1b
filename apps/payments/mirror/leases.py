"""The lease on a mirror row: one pusher per object at a time, and what its push leaves on the row.

A task takes the lease (`acquire`), pushes, and records Stripe's answer (`complete`),
or gives the lease back (`finish`). The lease outlives no task (it is longer than a
task's hard time limit), and a redelivered task keeps its id, so a killed worker's
successor takes its lease over.
"""

import json
import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.catalog.models import Price
from apps.payments.gateway.errors import StripeKeySpent
from apps.payments.mirror import lease_heartbeats
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.mirror.outbox import mirror_record_change
from apps.payments.mirror.outcomes import WAITING, Completion, Pushed, Waiting

log = logging.getLogger("apps.payments.mirror")

# Stripe forgets idempotency keys after 24 hours; a retry later than this searches first.
LATE_RETRY = timedelta(hours=23)


def lease_length() -> timedelta:
    # Longer than a task may live (its hard time limit), so a lease never outlives its holder's request.
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 30)


def _held_by_another(record: MirrorRecord, owner: str, now) -> bool:
    """Another pusher holds the row's lease and still runs (a killed worker's lease is free at once)."""
    if not record.lease_owner or record.lease_owner == owner or not record.lease_until or record.lease_until <= now:
        return False
    if lease_heartbeats.is_alive(record.lease_owner):
        return True
    log.warning("mirror lease taken over app_ref=%s from=%s (its process is gone)", record.app_ref, record.lease_owner)
    return False


def acquire(record_id: int, owner: str) -> MirrorRecord | Waiting | None:
    """The row with its lease taken by `owner`; None when there is nothing to push or another holds it; `WAITING`
    for a price whose product is not in Stripe yet (no lease: the product's task brings it along, or releases
    it after). A product's first push also takes the lease of its first price waiting to go (`record.claimed`),
    in the same transaction: it is made in Stripe with the product."""
    now = timezone.now()
    with transaction.atomic():
        record = MirrorRecord.objects.select_for_update().filter(pk=record_id).first()
        if record is None or record.state == MirrorState.FAILED:
            return None
        if record.synced_version >= record.version:
            if record.state != MirrorState.SYNCED:
                record.state = MirrorState.SYNCED
                record.save(update_fields=["state", "updated_at"])
            return None
        if _held_by_another(record, owner, now):
            return None  # its holder loops until the newest version is in Stripe
        if record.kind == MirrorKind.PRICE and not record.stripe_id and not _product_ready(record):
            return WAITING
        if record.first_attempt_at and now - record.first_attempt_at > LATE_RETRY:
            record.key_generation += 1
            record.first_attempt_at = now
        record.first_attempt_at = record.first_attempt_at or now
        record.lease_owner, record.lease_until = owner, now + lease_length()
        record.attempts += 1
        record.save(
            update_fields=["lease_owner", "lease_until", "attempts", "first_attempt_at", "key_generation", "updated_at"]
        )
        first_push = record.kind == MirrorKind.PRODUCT and not record.stripe_id and not record.deleted
        record.claimed = claim_first_price(record, owner, now) if first_push else None
        return record


def _product_ready(price_record: MirrorRecord) -> bool:
    """A price can go once its product is in Stripe (or failed); until then its product is nudged instead."""
    product_id = Price.objects.filter(pk=price_record.object_id).values_list("product_id", flat=True).first()
    if product_id is None:
        return True
    product_record = MirrorRecord.objects.filter(kind=MirrorKind.PRODUCT, object_id=product_id).first()
    if product_record is None:
        mirror_record_change(kind=MirrorKind.PRODUCT, object_id=product_id)
        return False
    return bool(product_record.stripe_id) or product_record.state == MirrorState.FAILED


COMPLETION_FIELDS = [
    "stripe_id",
    "pushed",
    "synced_version",
    "synced_at",
    "last_error",
    "state",
    "lease_owner",
    "lease_until",
    "pending_since",
    "first_attempt_at",
    "attempts",
    "updated_at",
]


def complete(record_id: int, owner: str, version: int, result: Pushed) -> Completion:
    """Record that Stripe holds `version` of the object."""
    now = timezone.now()
    with transaction.atomic():
        record = MirrorRecord.objects.select_for_update().get(pk=record_id)
        if record.lease_owner != owner:
            log.warning("mirror lease lost app_ref=%s owner=%s", record.app_ref, owner)
            return Completion.LEASE_LOST
        record.stripe_id = result.stripe_id
        record.pushed = {**record.pushed, **result.pushed}
        record.synced_version = version
        record.synced_at = now
        record.last_error = ""
        done = record.version == version
        if done:
            record.state = MirrorState.SYNCED
            record.lease_owner, record.lease_until = "", None
            record.pending_since = record.first_attempt_at = None
            record.attempts = 0
        try:
            with transaction.atomic():
                record.save(update_fields=COMPLETION_FIELDS)
        except IntegrityError:
            message = f"{result.stripe_id} already mirrors another local object"
            log.error("mirror conflict app_ref=%s error=%s", record.app_ref, message)
            MirrorRecord.objects.filter(pk=record_id).update(
                state=MirrorState.FAILED, lease_owner="", lease_until=None, last_error=message
            )
            return Completion.CONFLICT
        return Completion.DONE if done else Completion.AGAIN


def finish(record_id: int, owner: str, *, failure: str | None = None, error: BaseException | None = None) -> None:
    """Give the lease back; with `failure`, the row is failed for good with Stripe's reason."""
    with transaction.atomic():
        record = MirrorRecord.objects.select_for_update().filter(pk=record_id).first()
        if record is None or record.lease_owner != owner:
            return
        record.lease_owner, record.lease_until = "", None
        if failure is not None:
            record.state, record.last_error = MirrorState.FAILED, failure
        elif error is not None:
            record.last_error = f"{error.__class__.__name__}: {error}"
            if isinstance(error, StripeKeySpent):
                record.key_generation += 1
        record.save()


def claim_first_price(product_record: MirrorRecord, owner: str, now) -> MirrorRecord | None:
    """Take the lease of the product's first active price that is not in Stripe yet, if nobody holds it: one
    read of the candidates (those another transaction is writing are skipped), one write of the lease."""
    prices = Price.objects.filter(product_id=product_record.object_id, active=True).values("pk")
    candidates = (
        MirrorRecord.objects.select_for_update(skip_locked=True)
        .filter(kind=MirrorKind.PRICE, object_id__in=prices, stripe_id="", state=MirrorState.PENDING)
        .order_by("object_id")
    )
    for price_record in candidates:
        if _held_by_another(price_record, owner, now):
            continue
        price_record.lease_owner, price_record.lease_until = owner, now + lease_length()
        price_record.first_attempt_at = price_record.first_attempt_at or now
        price_record.attempts += 1  # made with its product: an attempt that may reach Stripe like its own
        price_record.save(update_fields=["lease_owner", "lease_until", "first_attempt_at", "attempts", "updated_at"])
        return price_record
    return None


def complete_together(owner: str, pushes: list[tuple[MirrorRecord, int, Pushed]]) -> dict[int, Completion]:
    """Record, in one statement, that Stripe holds each `(row, version, answer)` (a product made with its first
    price). Each row as `complete` would leave it; a row whose lease another took is left alone. Raises
    `IntegrityError` when a Stripe object already mirrors another row (`complete` then names the conflict)."""
    if connection.vendor != "postgresql":  # `make run`'s SQLite: one by one
        return {row.pk: complete(row.pk, owner, version, result) for row, version, result in pushes}
    now = timezone.now()
    quote = connection.ops.quote_name
    table = quote(MirrorRecord._meta.db_table)
    values = ", ".join(["(%s::bigint, %s::integer, %s, %s::jsonb)"] * len(pushes))
    params = []
    for record, version, result in pushes:
        params += [record.pk, version, result.stripe_id, json.dumps(result.pushed)]

    # Once the newest version is in Stripe the row is synced and its lease free; otherwise it stays leased
    # for the version written meanwhile.
    newest = "m.version = v.version"
    statement = (
        f"UPDATE {table} AS m SET stripe_id = v.stripe_id, pushed = m.pushed || v.pushed, "  # noqa: S608
        "synced_version = v.version, synced_at = %s, last_error = '', updated_at = %s, "
        f"state = CASE WHEN {newest} THEN %s ELSE m.state END, "
        f"lease_owner = CASE WHEN {newest} THEN '' ELSE m.lease_owner END, "
        f"lease_until = CASE WHEN {newest} THEN NULL ELSE m.lease_until END, "
        f"pending_since = CASE WHEN {newest} THEN NULL ELSE m.pending_since END, "
        f"first_attempt_at = CASE WHEN {newest} THEN NULL ELSE m.first_attempt_at END, "
        f"attempts = CASE WHEN {newest} THEN 0 ELSE m.attempts END "
        f"FROM (VALUES {values}) AS v(id, version, stripe_id, pushed) "
        f"WHERE m.id = v.id AND m.lease_owner = %s RETURNING m.id, {newest}"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [now, now, MirrorState.SYNCED, *params, owner])
        done = dict(cursor.fetchall())
    completions = {}
    for record, _, _ in pushes:
        if record.pk not in done:
            log.warning("mirror lease lost app_ref=%s owner=%s", record.app_ref, owner)
            completions[record.pk] = Completion.LEASE_LOST
        else:
            completions[record.pk] = Completion.DONE if done[record.pk] else Completion.AGAIN
    return completions
