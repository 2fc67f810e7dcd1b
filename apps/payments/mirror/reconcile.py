"""Compare Stripe with the local catalog and users, and repair drift both ways.

- missing: a local object Stripe does not hold (or no longer holds) -> mirrored again;
- extra: a live Stripe object whose `app_ref` names no local object, or a second live
  one for the same object -> deleted (customers) or archived (products, prices);
- differing: Stripe holds other values than the local object -> the local ones are pushed.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from apps.payments.gateway.client import gateway
from apps.payments.mirror import outbox, sync
from apps.payments.mirror.installation import is_ours
from apps.payments.mirror.specs import SPECS
from apps.payments.models import MirrorRecord, MirrorState


@dataclass
class Drift:
    kind: str
    local: int = 0
    stripe: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    repaired: int = 0


def stripe_objects(kind: str) -> Iterable:
    """Every live Stripe object of this kind that carries an `app_ref` of this installation, through the shared
    budget (objects of other installations sharing the account are not ours to report or repair)."""
    gw = gateway()
    service = getattr(gw.v1, SPECS[kind].resource)
    page = gw.call(lambda options: service.list(params={"limit": 100}, options=options))
    while True:
        for obj in page.data:
            ref = (obj.metadata or {}).get("app_ref", "")
            if ref.startswith(f"{kind}:") and is_ours(obj.metadata) and not getattr(obj, "deleted", False):
                yield obj
        if not page.has_more:
            return
        last = page.data[-1].id
        page = gw.call(
            lambda options, last=last: service.list(params={"limit": 100, "starting_after": last}, options=options)
        )


def reconcile(kind: str, *, repair: bool, on_step: Callable[[], None] = lambda: None) -> Drift:
    spec = SPECS[kind]
    drift = Drift(kind=kind)
    by_ref: dict[str, list] = {}
    for obj in stripe_objects(kind):
        by_ref.setdefault(obj.metadata["app_ref"], []).append(obj.to_dict())
        drift.stripe += 1
    records = {record.object_id: record for record in MirrorRecord.objects.filter(kind=kind)}
    local_ids = set()
    for local in spec.model.objects.order_by("pk").iterator():
        local_ids.add(local.pk)
        drift.local += 1
        ref = f"{kind}:{local.pk}"
        record = records.get(local.pk)
        current = [obj for obj in by_ref.get(ref, []) if record and obj["id"] == record.stripe_id]
        if not current:
            drift.missing.append(ref)
            if repair:
                _mirror_now(kind, local.pk, stripe_object=by_ref.get(ref, [None])[0], adopt=True)
                drift.repaired += 1
        elif not spec.matches(local, current[0]):
            drift.differing.append(ref)
            if repair:
                _mirror_now(kind, local.pk, stripe_object=current[0])
                drift.repaired += 1
        on_step()
    for ref, objs in by_ref.items():
        object_id = int(ref.split(":", 1)[1])
        keep = records[object_id].stripe_id if object_id in local_ids and object_id in records else None
        for obj in objs:
            live = obj.get("active", True)
            if obj["id"] != keep and live:
                drift.extra.append(f"{ref} {obj['id']}")
                if repair:
                    _retire(kind, obj["id"])
                    drift.repaired += 1
    return drift


def _mirror_now(kind: str, object_id: int, stripe_object: dict | None = None, adopt: bool = False) -> None:
    """Push the local object now. With `adopt`, the Stripe object already carrying its `app_ref` is taken
    over, not duplicated; metadata keys that Stripe holds and the local object does not are removed."""
    outbox.mirror_record_change(kind=kind, object_id=object_id, queue=False)
    record = MirrorRecord.objects.get(kind=kind, object_id=object_id)
    if stripe_object is not None:
        changes = {}
        if adopt and record.stripe_id != stripe_object["id"]:
            changes["stripe_id"] = stripe_object["id"]
        # Stripe merges metadata: the keys it holds are sent (empty where the local object has none) with the push.
        known = set(record.pushed.get("metadata_keys", []))
        held = set(stripe_object.get("metadata") or {})
        if not held <= known:
            changes["pushed"] = {**record.pushed, "metadata_keys": sorted(known | held)}
        if changes:
            MirrorRecord.objects.filter(pk=record.pk).update(**changes)
    if record.state == MirrorState.FAILED:
        outbox.mirror_again(record=record, queue=False)
    sync.mirror_sync(record_id=record.pk)


def _retire(kind: str, stripe_id: str) -> None:
    """An extra object leaves Stripe as Stripe allows: products and prices are archived, customers deleted."""
    gw = gateway()
    service = getattr(gw.v1, SPECS[kind].resource)
    if SPECS[kind].archived_not_deleted:
        gw.call(lambda options: service.update(stripe_id, params={"active": False}, options=options))
    else:
        gw.call(lambda options: service.delete(stripe_id, options=options))
