"""Comparing Stripe with the local catalog and users (apps/payments/mirror/reconcile.py): what Stripe lacks
(missing), what it holds that no local object stands for, or twice (extra), and what it holds otherwise
(differing); a dry run only reports, a repair retires extra objects once Stripe is read and pushes the rest;
another installation's objects are never counted; Stripe is read page by page, and a stopped run continues from
its last page; one run per kind at a time.

Here with Stripe's lists and answers played by an in-memory stand-in. The same runs through the
`stripe_reconcile` command against the emulator (adoption of a twin, metadata repaired once, repairs that lose
their lease, a price replaced while a run is stopped) are covered in tests/payments/mirror/test_commands_and_api.py
(`TestStripeReconcile`).
"""

import socket
import subprocess
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState, ReconcileHold
from apps.payments.mirror.reconcile import HOLD_FOR, ReconcileBusy, _alone, reconcile
from tests.catalog.factories import ProductFactory
from tests.payments.factories import MirrorRecordFactory
from tests.payments.stripe_stand_in import missing, sdk_list

pytestmark = pytest.mark.django_db

OURS, THEIRS = "testsuite", "another-installation"


def _stripe_product(stripe_id: str, object_id: int, name: str, *, namespace: str | None = OURS, **fields) -> dict:
    metadata = {"app_ref": f"catalog.product:{object_id}"}
    if namespace:
        metadata["app_namespace"] = namespace
    return {
        "id": stripe_id,
        "object": "product",
        "name": name,
        "description": None,
        "active": True,
        "metadata": metadata,
        **fields,
    }


def _local(name: str, stripe_id: str | None) -> int:
    product = ProductFactory(name=name, description="", metadata={})
    if stripe_id is not None:
        MirrorRecordFactory(
            kind=MirrorKind.PRODUCT,
            object_id=product.pk,
            stripe_id=stripe_id,
            state=MirrorState.SYNCED,
            synced_version=1,
        )
    return product.pk


@pytest.fixture
def catalog(stripe_stand_in):
    """Four local products against what Stripe lists: one as it should be, one renamed in Stripe, one Stripe lacks;
    and in Stripe one naming no local product, one of another installation, one unmarked nobody here holds."""
    same = _local("Teapot", "prod_same")
    renamed = _local("Cup", "prod_renamed")
    lacking = _local("Saucer", "prod_lost")
    stripe_stand_in.always(
        "products.list",
        [
            _stripe_product("prod_same", same, "Teapot"),
            _stripe_product("prod_renamed", renamed, "Mug"),
            _stripe_product("prod_extra", 999_999, "Gone here"),
            _stripe_product("prod_theirs", same, "Theirs", namespace=THEIRS),
            _stripe_product("prod_unmarked", renamed, "Unmarked", namespace=None),
        ],
    )
    return {"same": same, "renamed": renamed, "lacking": lacking}


def test_a_dry_run_reports_missing_extra_and_differing_and_writes_nothing(stripe_stand_in, catalog):
    drift = reconcile(MirrorKind.PRODUCT, repair=False)

    assert (drift.local, drift.stripe) == (3, 3)  # another installation's and the unmarked one are not counted
    assert drift.missing == [f"catalog.product:{catalog['lacking']}"]
    assert drift.extra == ["catalog.product:999999 prod_extra"]
    assert drift.differing == [f"catalog.product:{catalog['renamed']}"]
    assert (drift.repaired, drift.unrepaired_count) == (0, 0)
    assert set(stripe_stand_in.paths) == {"products.list"}


def test_a_repair_archives_extra_products_once_stripe_is_read_and_pushes_what_differs(stripe_stand_in, catalog):
    def update(call):
        if call.args[0] == "prod_lost":
            return missing("product")
        return {
            "id": call.args[0],
            "object": "product",
            "name": call.params.get("name", "Gone here"),
            "active": call.params.get("active", True),
            "updated": 1_767_268_800,
            "metadata": call.params.get("metadata", {}),
        }

    stripe_stand_in.always("products.update", update)
    stripe_stand_in.always("products.search", [])
    stripe_stand_in.always(
        "products.create",
        lambda call: {"id": "prod_again", "object": "product", "updated": 1_767_268_800, **call.params},
    )

    drift = reconcile(MirrorKind.PRODUCT, repair=True)

    updates = {call.args[0]: call.params for call in stripe_stand_in.calls_to("products.update")}
    assert updates["prod_extra"] == {"active": False}  # archived, never deleted
    assert updates["prod_renamed"]["name"] == "Cup"  # the local name goes back to Stripe
    assert set(updates).isdisjoint({"prod_theirs", "prod_unmarked"})
    first_write = next(i for i, path in enumerate(stripe_stand_in.paths) if path != "products.list")
    assert "products.list" not in stripe_stand_in.paths[first_write:]  # nothing written while Stripe is read
    assert stripe_stand_in.calls_to("products.create")[0].params["name"] == "Saucer"  # Stripe lacked it: made again
    assert MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=catalog["lacking"]).stripe_id == "prod_again"
    assert (drift.repaired, drift.unrepaired_count) == (3, 0)  # the extra, the differing and the missing one


def test_an_extra_customer_is_deleted_and_one_deleted_already_is_left_so(stripe_stand_in):
    stripe_stand_in.always(
        "customers.list",
        [
            {"id": "cus_a", "object": "customer", "metadata": {"app_ref": "users.user:999998", "app_namespace": OURS}},
            {"id": "cus_b", "object": "customer", "metadata": {"app_ref": "users.user:999999", "app_namespace": OURS}},
        ],
    )
    stripe_stand_in.always(
        "customers.delete",
        lambda call: missing("customer") if call.args[0] == "cus_b" else {"id": "cus_a", "deleted": True},
    )

    drift = reconcile(MirrorKind.USER, repair=True)

    assert [call.args[0] for call in stripe_stand_in.calls_to("customers.delete")] == ["cus_a", "cus_b"]
    assert (drift.extra_count, drift.repaired) == (2, 2)


def test_stripe_is_read_page_by_page_and_a_stopped_run_continues_from_its_last_page(stripe_stand_in):
    ids = [_local(f"Product {n}", f"prod_{n}") for n in range(3)]
    pages = {
        "": sdk_list([_stripe_product("prod_0", ids[0], "Product 0")], has_more=True),
        "prod_0": sdk_list([_stripe_product("prod_1", ids[1], "Product 1")], has_more=True),
        "prod_1": sdk_list([_stripe_product("prod_2", ids[2], "Product 2")]),
    }
    stripe_stand_in.always("products.list", lambda call: pages[call.params.get("starting_after", "")])

    def stop_after_the_first_page(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reconcile(MirrorKind.PRODUCT, repair=False, on_step=stop_after_the_first_page)
    drift = reconcile(MirrorKind.PRODUCT, repair=False)

    cursors = [call.params.get("starting_after", "") for call in stripe_stand_in.calls_to("products.list")]
    assert cursors == ["", "prod_0", "prod_1"]  # the first page is not read twice
    assert all(call.params["limit"] == 100 for call in stripe_stand_in.calls_to("products.list"))
    assert drift.resumed is True
    assert (drift.stripe, drift.local, drift.missing_count, drift.extra_count) == (3, 3, 0, 0)


def test_a_second_run_of_a_kind_is_refused_while_one_runs(stripe_stand_in):
    holds, done = threading.Event(), threading.Event()

    def another_process_runs() -> None:  # its own database session, holding the kind's lock
        try:
            with _alone(MirrorKind.PRODUCT):
                holds.set()
                done.wait(timeout=10)
        finally:
            connection.close()

    thread = threading.Thread(target=another_process_runs)
    thread.start()
    assert holds.wait(timeout=10)
    stripe_stand_in.always("customers.list", [])
    try:
        with pytest.raises(ReconcileBusy, match=r"another stripe_reconcile of catalog\.product is running"):
            reconcile(MirrorKind.PRODUCT, repair=False)
        reconcile(MirrorKind.USER, repair=False)
    finally:
        done.set()
        thread.join(timeout=10)

    assert stripe_stand_in.paths == ["customers.list"]  # another kind is not held back


def test_a_run_that_was_killed_gives_its_kind_back_when_its_hold_runs_out(stripe_stand_in):
    stripe_stand_in.always("products.list", [])
    ReconcileHold.objects.create(kind=MirrorKind.PRODUCT, holder="killed", held_until=timezone.now() + HOLD_FOR)
    with pytest.raises(ReconcileBusy, match=r"killed on another machine gives the kind back 120 s after"):
        reconcile(MirrorKind.PRODUCT, repair=False)

    ReconcileHold.objects.filter(holder="killed").update(held_until=timezone.now() - timedelta(seconds=1))
    drift = reconcile(MirrorKind.PRODUCT, repair=False)

    assert drift.stripe == 0
    assert not ReconcileHold.objects.exists()  # given back at the end


def test_a_run_renews_its_hold_at_each_page_and_stops_if_another_took_it_over(stripe_stand_in):
    ids = [_local(f"Product {n}", f"prod_{n}") for n in range(2)]
    pages = {
        "": sdk_list([_stripe_product("prod_0", ids[0], "Product 0")], has_more=True),
        "prod_0": sdk_list([_stripe_product("prod_1", ids[1], "Product 1")]),
    }
    stripe_stand_in.always("products.list", lambda call: pages[call.params.get("starting_after", "")])
    renewed = []

    def idle_past_its_hold(done: int) -> None:
        hold = ReconcileHold.objects.get(kind=MirrorKind.PRODUCT)
        renewed.append(hold.held_until - timezone.now())
        hold.holder = "a later run"  # this run was idle past its hold, and another run took the kind
        hold.save()

    with pytest.raises(ReconcileBusy, match="idle past its hold and another run took it over"):
        reconcile(MirrorKind.PRODUCT, repair=False, on_step=idle_past_its_hold)

    assert len(renewed) == 1
    assert renewed[0] > HOLD_FOR - timedelta(seconds=5)
    assert [call.params.get("starting_after", "") for call in stripe_stand_in.calls_to("products.list")] == [
        "",
        "prod_0",
    ]
    assert ReconcileHold.objects.get().holder == "a later run"  # the other run's hold is left to it


def test_a_run_killed_on_this_machine_gives_its_kind_back_at_once(stripe_stand_in):
    stripe_stand_in.always("products.list", [])
    dead = subprocess.Popen(["true"])  # a process that is gone: its pid names no one now
    dead.wait()
    here = socket.gethostname()[:40]
    ReconcileHold.objects.create(
        kind=MirrorKind.PRODUCT, holder=f"{here}:{dead.pid}:killed", held_until=timezone.now() + HOLD_FOR
    )

    drift = reconcile(MirrorKind.PRODUCT, repair=False)

    assert drift.stripe == 0
    assert not ReconcileHold.objects.exists()


def test_a_live_run_on_this_machine_keeps_its_kind(stripe_stand_in):
    alive = subprocess.Popen(["sleep", "30"])
    try:
        ReconcileHold.objects.create(
            kind=MirrorKind.PRODUCT,
            holder=f"{socket.gethostname()[:40]}:{alive.pid}:running",
            held_until=timezone.now() + HOLD_FOR,
        )
        with pytest.raises(ReconcileBusy, match=r"another stripe_reconcile of catalog\.product is running"):
            reconcile(MirrorKind.PRODUCT, repair=False)
    finally:
        alive.kill()
        alive.wait()
