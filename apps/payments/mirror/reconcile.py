"""Compare Stripe with the local catalog and users, and repair drift both ways.

- missing: a local object Stripe does not hold (or no longer holds) -> mirrored again;
- extra: a live Stripe object whose `app_ref` names no local object, or a second live
  one for the same object -> deleted (customers) or archived (products, prices);
- differing: Stripe holds other values than the local object -> the local ones are pushed.

A repair counts as repaired only when the push ends with Stripe holding the latest version
(`SyncOutcome.SYNCED`); one that failed, met a conflict, lost its lease to another task or
waits for its product is reported as not repaired, with what it came to.

A run reads Stripe a page (100 objects) at a time through the shared budget and compares
each page with the local objects it names, in two queries; what it found is marked on the
mirror rows (`seen_by_reconcile`), so the local objects Stripe lacks are found afterwards
by a query, not by holding Stripe's catalog in memory. Memory stays flat whatever the
catalog's size. Every page is a checkpoint (`ReconcileRun`): a run that is stopped
continues from its last page when started again.
"""

import os
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import stripe
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from apps.payments.gateway.client import gateway
from apps.payments.gateway.installation import APP_REF_KEY, NAMESPACE_KEY, is_ours
from apps.payments.mirror import outbox, sync
from apps.payments.mirror.models import MirrorRecord, MirrorState, ReconcileHold, ReconcilePhase, ReconcileRun
from apps.payments.mirror.outcomes import SyncOutcome
from apps.payments.mirror.specs import SPECS

PAGE = 100  # Stripe's largest list page
LOCAL_CHUNK = 1000
EXAMPLES_KEPT = 50  # refs kept per drift to report; the counts are whole
# A stopped run is continued within this long; Stripe's list cursors stay valid, but an older run is stale.
RESUMABLE_FOR = timedelta(hours=23)
# How long a run holds its kind past its last checkpoint: longer than one page through a busy budget takes.
HOLD_FOR = timedelta(minutes=2)


class ReconcileBusy(Exception):
    """Another process is reconciling the same kind right now."""


@dataclass
class Drift:
    kind: str
    local: int = 0
    stripe: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    missing_count: int = 0
    extra_count: int = 0
    differing_count: int = 0
    repaired: int = 0
    unrepaired: list[str] = field(default_factory=list)  # "<ref> <what the push came to>"
    unrepaired_count: int = 0
    resumed: bool = False

    @classmethod
    def of(cls, run: ReconcileRun, resumed: bool = False) -> "Drift":
        examples = run.examples or {}
        return cls(
            kind=run.kind,
            local=run.local,
            stripe=run.stripe,
            missing=list(examples.get("missing", [])),
            extra=list(examples.get("extra", [])),
            differing=list(examples.get("differing", [])),
            missing_count=run.missing,
            extra_count=run.extra,
            differing_count=run.differing,
            repaired=run.repaired,
            unrepaired=list(examples.get("unrepaired", [])),
            unrepaired_count=examples.get("unrepaired_count", 0),
            resumed=resumed,
        )

    def note(self, drift: str, ref: str) -> None:
        setattr(self, f"{drift}_count", getattr(self, f"{drift}_count") + 1)
        examples = getattr(self, drift)
        if len(examples) < EXAMPLES_KEPT:
            examples.append(ref)

    def count_repair(self, ref: str, outcome: SyncOutcome) -> None:
        """A repair is repaired only if Stripe now holds the latest version; otherwise it is reported as it is."""
        if outcome == SyncOutcome.SYNCED:
            self.repaired += 1
            return
        self.unrepaired_count += 1
        if len(self.unrepaired) < EXAMPLES_KEPT:
            self.unrepaired.append(f"{ref} {outcome}")

    def save_to(self, run: ReconcileRun, **checkpoint) -> None:
        """The counts so far and where the run stands, in one write."""
        for name, value in checkpoint.items():
            setattr(run, name, value)
        run.local, run.stripe, run.repaired = self.local, self.stripe, self.repaired
        run.missing, run.extra, run.differing = self.missing_count, self.extra_count, self.differing_count
        run.examples = {
            "missing": self.missing,
            "extra": self.extra,
            "differing": self.differing,
            "unrepaired": self.unrepaired,
            "unrepaired_count": self.unrepaired_count,
        }
        run.save()


def _names_kind(kind: str, obj) -> bool:
    ref = (obj.metadata or {}).get(APP_REF_KEY, "")
    return ref.startswith(f"{kind}:") and not getattr(obj, "deleted", False)


def _ours(kind: str, page: list) -> list:
    """The objects of a page written by this installation: those with our namespace, and those mirrored before
    objects carried one (no namespace at all) that a mirror row of ours holds as its Stripe object. An object
    of another namespace, or an unmarked one no row of ours holds, is never ours."""
    unmarked = [obj.id for obj in page if _names_kind(kind, obj) and not (obj.metadata or {}).get(NAMESPACE_KEY)]
    held = set(
        MirrorRecord.objects.filter(kind=kind, stripe_id__in=unmarked).values_list("stripe_id", flat=True)
        if unmarked
        else ()
    )
    return [obj for obj in page if _names_kind(kind, obj) and (is_ours(obj.metadata) or obj.id in held)]


def stripe_pages(kind: str, after: str = "") -> Iterable[list]:
    """Stripe's objects of this kind, a page at a time (each page's last object is the cursor to go on from),
    through the shared budget."""
    gw = gateway()
    service = getattr(gw.v1, SPECS[kind].resource)
    while True:
        params = {"limit": PAGE, **({"starting_after": after} if after else {})}
        page = gw.call(lambda options, params=params: service.list(params=params, options=options))
        if page.data:
            yield page.data
            after = page.data[-1].id
        if not page.has_more:
            return


class _Hold:
    """This run's hold on its kind (`ReconcileHold`): taken in one statement, renewed at every checkpoint, given
    back at the end. Each is a statement of its own, so it works through a pooler in transaction mode."""

    def __init__(self, kind: str):
        self.kind = kind
        self.holder = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.table = connection.ops.quote_name(ReconcileHold._meta.db_table)

    def take(self) -> bool:
        return self._insert() or (self._holder_died_here() and self._insert())

    def _holder_died_here(self) -> bool:
        """The hold of a run that was killed on this machine is given back at once, not when it runs out."""
        held = ReconcileHold.objects.filter(kind=self.kind).values_list("holder", flat=True).first()
        host, _, rest = (held or "").partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname()[:40] or not pid.isdigit() or int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return bool(ReconcileHold.objects.filter(kind=self.kind, holder=held).delete()[0])
        except PermissionError:  # alive, another user's
            return False
        return False

    def _insert(self) -> bool:
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {self.table} (kind, holder, held_until) VALUES (%s, %s, %s) "  # noqa: S608
                f"ON CONFLICT (kind) DO UPDATE SET holder = excluded.holder, held_until = excluded.held_until "
                f"WHERE {self.table}.held_until < %s RETURNING holder",
                [self.kind, self.holder, now + HOLD_FOR, now],
            )
            return cursor.fetchone() is not None

    def keep(self) -> None:
        """Renewed; a run whose hold ran out and was taken by another stops rather than run beside it."""
        taken = ReconcileHold.objects.filter(kind=self.kind, holder=self.holder)
        if not taken.update(held_until=timezone.now() + HOLD_FOR):
            raise ReconcileBusy(f"this run of {self.kind} was idle past its hold and another run took it over")

    def give_back(self) -> None:
        ReconcileHold.objects.filter(kind=self.kind, holder=self.holder).delete()


@contextmanager
def _alone(kind: str) -> Iterator[_Hold]:
    """One run per kind at a time, whatever process or machine runs it."""
    hold = _Hold(kind)
    if not hold.take():
        raise ReconcileBusy(
            f"another stripe_reconcile of {kind} is running; wait for it to finish (a run killed on another machine "
            f"gives the kind back {HOLD_FOR.seconds} s after its last checkpoint)"
        )
    try:
        yield hold
    finally:
        hold.give_back()


def _run_for(kind: str, repair: bool, restart: bool) -> tuple[ReconcileRun, bool]:
    """The stopped run of this kind and mode to continue, or a new one. (A dry run between a stopped repair and
    its continuation leaves the repair to continue: each run's marks carry its own id.)"""
    now = timezone.now()
    stopped = ReconcileRun.objects.filter(kind=kind, repair=repair, finished_at__isnull=True)
    unfinished = stopped.order_by("-started_at").first()
    if unfinished is not None and not restart and now - unfinished.started_at < RESUMABLE_FOR:
        return unfinished, True
    stopped.update(finished_at=now)
    return ReconcileRun.objects.create(kind=kind, repair=repair), False


def reconcile(
    kind: str, *, repair: bool, restart: bool = False, on_step: Callable[[int], None] = lambda done: None
) -> Drift:
    """Compare (and with `repair`, repair) one kind; a stopped run of the same kind and mode is continued
    unless `restart`. `on_step` is told how many objects have been compared so far."""
    with _alone(kind) as hold:

        def step(done: int) -> None:
            hold.keep()
            on_step(done)

        return _reconcile(kind, repair, restart, step)


def _reconcile(kind: str, repair: bool, restart: bool, on_step: Callable[[int], None]) -> Drift:
    run, resumed = _run_for(kind, repair, restart)
    drift = Drift.of(run, resumed)
    if run.phase == ReconcilePhase.STRIPE:
        for page in stripe_pages(kind, after=run.stripe_cursor):
            _compare_page(run, drift, _ours(kind, page))
            drift.save_to(run, stripe_cursor=page[-1].id)
            on_step(drift.stripe + drift.local)
        drift.save_to(run, phase=ReconcilePhase.CLAIMED)
    if run.phase == ReconcilePhase.CLAIMED:
        _settle_claims(run, drift, on_step)
        drift.save_to(run, phase=ReconcilePhase.LOCAL, claims=[])
    if run.phase == ReconcilePhase.LOCAL:
        for last_pk in _compare_local(run, drift):
            drift.save_to(run, local_cursor=last_pk)
            on_step(drift.stripe + drift.local)
        drift.save_to(run, phase=ReconcilePhase.DONE, finished_at=timezone.now())
    return drift


def _compare_page(run: ReconcileRun, drift: Drift, objs: list) -> None:
    """One page of Stripe's objects against the local objects they name. Nothing is deleted while Stripe is
    being read (a deleted last object of a page would be the cursor of the next): extra objects are retired,
    and claims settled, once every page is read."""
    spec = SPECS[run.kind]
    ids = {obj.id: int(obj.metadata["app_ref"].split(":", 1)[1]) for obj in objs}
    locals_ = spec.model.objects.in_bulk(set(ids.values()))
    records = {r.object_id: r for r in MirrorRecord.objects.filter(kind=run.kind, object_id__in=set(ids.values()))}
    seen = []
    for obj in objs:
        drift.stripe += 1
        object_id = ids[obj.id]
        ref, local, record = f"{run.kind}:{object_id}", locals_.get(object_id), records.get(object_id)
        live = getattr(obj, "active", True)
        if local is None:
            if live:
                drift.note("extra", f"{ref} {obj.id}")
                run.claims.append({"retire": obj.id})
        elif record is not None and record.stripe_id == obj.id:
            seen.append(record.pk)
            if not spec.matches(local, obj.to_dict()):
                drift.note("differing", ref)
                if run.repair:
                    drift.count_repair(ref, _mirror_now(run.kind, object_id, stripe_object=obj.to_dict()))
        elif live or record is None or not record.stripe_id:
            # It names a local object whose mirror is another Stripe object (or none yet): decided later. An
            # archived one beside a mirror is history (a price replaced when its amount changed), not a claim.
            run.claims.append({"object_id": object_id, "id": obj.id, "live": live, "metadata": obj.metadata.to_dict()})
    MirrorRecord.objects.filter(pk__in=seen).update(seen_by_reconcile=run.pk)


def _settle_claims(run: ReconcileRun, drift: Drift, on_step: Callable[[int], None]) -> None:
    """Extra objects are retired. A Stripe object naming a local object whose own mirror was found (or pushed
    since the run began) is a second one (extra); if its mirror was not found, the first live such object is
    adopted as its mirror (Stripe lacked it: missing) and the rest are extra. Safe to run again after a stop:
    an adopted object is the mirror then, and retiring twice is retiring once."""
    adopted: set[int] = set()
    for claim in sorted(run.claims, key=lambda claim: "retire" in claim or not claim["live"]):
        on_step(drift.stripe + drift.local)  # each claim may call Stripe: the run's hold is renewed before it
        if "retire" in claim:
            if run.repair:
                _retire(run.kind, claim["retire"])
                drift.repaired += 1
            continue
        object_id, ref = claim["object_id"], f"{run.kind}:{claim['object_id']}"
        record = MirrorRecord.objects.filter(kind=run.kind, object_id=object_id).first()
        if record is not None and record.stripe_id == claim["id"]:
            continue  # adopted by this run before it was stopped
        found = record is not None and (
            record.seen_by_reconcile == run.pk or (record.synced_at is not None and record.synced_at >= run.started_at)
        )
        adoptable = claim["live"] or record is None or not record.stripe_id
        if not found and adoptable and object_id not in adopted:
            adopted.add(object_id)
            drift.note("missing", ref)
            # Marked found in a dry run too, so the local comparison does not count it missing a second time.
            MirrorRecord.objects.filter(kind=run.kind, object_id=object_id).update(seen_by_reconcile=run.pk)
            if run.repair:
                drift.count_repair(ref, _mirror_now(run.kind, object_id, stripe_object=claim, adopt=True))
        elif claim["live"]:
            _extra(run, drift, ref, claim["id"])


def _compare_local(run: ReconcileRun, drift: Drift) -> Iterable[int]:
    """Local objects whose Stripe object the run did not find, a chunk at a time; yields each chunk's last pk.
    One pushed since the run began is the mirror's to keep, not missing."""
    spec = SPECS[run.kind]
    after = run.local_cursor
    while True:
        chunk = list(spec.model.objects.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:LOCAL_CHUNK])
        if not chunk:
            return
        found = set(
            MirrorRecord.objects.filter(kind=run.kind, object_id__in=chunk)
            .filter(Q(seen_by_reconcile=run.pk) | Q(synced_at__gte=run.started_at))
            .values_list("object_id", flat=True)
        )
        for object_id in chunk:
            drift.local += 1
            if object_id not in found:
                ref = f"{run.kind}:{object_id}"
                drift.note("missing", ref)
                if run.repair:
                    drift.count_repair(ref, _mirror_now(run.kind, object_id))
        after = chunk[-1]
        yield after


def _extra(run: ReconcileRun, drift: Drift, ref: str, stripe_id: str) -> None:
    drift.note("extra", f"{ref} {stripe_id}")
    if run.repair:
        _retire(run.kind, stripe_id)
        drift.repaired += 1


def _mirror_now(kind: str, object_id: int, stripe_object: dict | None = None, adopt: bool = False) -> SyncOutcome:
    """Push the local object now and answer what the push came to. With `adopt`, the Stripe object already
    carrying its `app_ref` is taken over, not duplicated; metadata keys that Stripe holds and the local object
    does not are removed."""
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
    return sync.mirror_sync(record_id=record.pk)


def _retire(kind: str, stripe_id: str) -> None:
    """An extra object leaves Stripe as Stripe allows: products and prices are archived, customers deleted
    (one deleted already, by a run that was stopped after it, is left so)."""
    gw = gateway()
    service = getattr(gw.v1, SPECS[kind].resource)
    if SPECS[kind].archived_not_deleted:
        gw.call(lambda options: service.update(stripe_id, params={"active": False}, options=options))
        return
    try:
        gw.call(lambda options: service.delete(stripe_id, options=options))
    except stripe.InvalidRequestError as error:
        if error.http_status != 404:
            raise
