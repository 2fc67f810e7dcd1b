"""The mirror's engine (apps/payments/mirror/sync.py): `mirror_sync` takes an object's lease, pushes the object
as it is now, records Stripe's answer, and goes round again while newer versions arrived meanwhile; what each
way a push can end leaves on the row (synced, failed for good, given back for a retry, lost to a successor); a
price waits for its product, and a product's first push sends the prices that waited for it.

Here one row at a time, with Stripe played by an in-memory stand-in (and, for what only a pusher outside the
gateway can raise, a pusher of the test's own). What each kind's push sends is in
tests/payments/mirror/test_pushers.py, the lease rules on their own in tests/payments/mirror/test_leases.py; a
real worker pushing to the emulator, killed midway or racing another, in tests/journeys/test_mirror.py and
tests/journeys/test_mirror_faults.py.
"""

from datetime import timedelta

import pytest
import stripe
from django.db import transaction
from django.utils import timezone

from apps.catalog import services as catalog
from apps.payments.gateway.errors import StripeUnavailable
from apps.payments.mirror import lease_heartbeats, sync
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.mirror.outbox import MIRROR_SYNC_TASK, mirror_record_change
from apps.payments.mirror.outcomes import SyncOutcome
from apps.payments.mirror.sync import mirror_sync
from tests.catalog.factories import PriceFactory, ProductFactory
from tests.payments.factories import MirrorRecordFactory
from tests.payments.stripe_stand_in import refused, unreachable
from tests.users.factories import UserFactory
from tools.bench.costs import counted

pytestmark = pytest.mark.django_db

CREATED = 1_767_268_800


def _customer(call) -> dict:
    customer_id = call.args[0] if call.args else "cus_1"
    return {"id": customer_id, "object": "customer", "created": CREATED, **call.params}


def _product(call) -> dict:
    params = {key: value for key, value in call.params.items() if key not in ("expand", "default_price_data")}
    answer = {"id": "prod_1", "object": "product", "created": CREATED, "updated": CREATED, "active": True, **params}
    if "default_price_data" in call.params:
        answer["default_price"] = {
            "id": "price_first",
            "object": "price",
            "product": "prod_1",
            "active": True,
            **call.params["default_price_data"],
        }
    return answer


def _row(kind: str = MirrorKind.USER, object_id: int | None = None, **fields) -> MirrorRecord:
    if object_id is None:
        object_id = UserFactory().pk if kind == MirrorKind.USER else ProductFactory(description="").pk
    return MirrorRecordFactory(
        kind=kind, object_id=object_id, **{"version": 1, "pending_since": timezone.now(), **fields}
    )


def _fresh(row: MirrorRecord) -> MirrorRecord:
    return MirrorRecord.objects.get(pk=row.pk)


def _syncs(queued_tasks) -> list[int]:
    return [task[1][0] for task in queued_tasks if task[0] == MIRROR_SYNC_TASK]


class TestPushing:
    def test_a_new_object_is_pushed_and_its_row_says_stripe_holds_it(self, stripe_stand_in):
        row = _row()
        stripe_stand_in.always("customers.create", _customer)

        assert mirror_sync(record_id=row.pk) == SyncOutcome.SYNCED

        row = _fresh(row)
        assert (row.state, row.stripe_id, row.synced_version, row.last_error) == (MirrorState.SYNCED, "cus_1", 1, "")
        assert (row.lease_owner, row.lease_until, row.pending_since, row.attempts) == ("", None, None, 0)

    def test_running_twice_pushes_once(self, stripe_stand_in):
        row = _row()
        stripe_stand_in.always("customers.create", _customer)
        mirror_sync(record_id=row.pk)

        assert mirror_sync(record_id=row.pk) == SyncOutcome.NOTHING_TO_DO
        assert stripe_stand_in.paths == ["customers.create"]

    def test_a_row_that_no_longer_exists_is_nothing_to_do(self, stripe_stand_in):
        assert mirror_sync(record_id=999_999) == SyncOutcome.NOTHING_TO_DO
        assert stripe_stand_in.calls == []

    def test_a_row_a_running_worker_is_pushing_is_left_to_it(self, stripe_stand_in):
        row = _row(lease_owner="task:other", lease_until=timezone.now() + timedelta(minutes=5))

        with lease_heartbeats.keep_alive("task:other"):
            outcome = mirror_sync(record_id=row.pk)

        assert outcome == SyncOutcome.NOTHING_TO_DO
        assert stripe_stand_in.calls == []
        assert _fresh(row).lease_owner == "task:other"

    def test_a_version_written_during_the_push_is_pushed_next_under_a_key_of_its_own(self, stripe_stand_in):
        row = _row()

        def created_while_the_user_changed(call):
            mirror_record_change(kind=MirrorKind.USER, object_id=row.object_id, queue=False)
            return _customer(call)

        stripe_stand_in.always("customers.create", created_while_the_user_changed)
        stripe_stand_in.always("customers.update", _customer)

        assert mirror_sync(record_id=row.pk) == SyncOutcome.SYNCED

        assert stripe_stand_in.paths == ["customers.create", "customers.update"]
        create, update = stripe_stand_in.calls
        assert update.args == ("cus_1",)
        assert update.idempotency_key != create.idempotency_key  # Stripe would replay the first push under its key
        assert (_fresh(row).synced_version, _fresh(row).state) == (2, MirrorState.SYNCED)

    def test_the_pusher_counts_as_alive_while_it_pushes_and_not_after(self, stripe_stand_in):
        row = _row()
        seen = []
        stripe_stand_in.always(
            "customers.create", lambda call: seen.append(lease_heartbeats.is_alive("task:1")) or _customer(call)
        )

        mirror_sync(record_id=row.pk, owner="task:1")

        assert (seen, lease_heartbeats.is_alive("task:1")) == ([True], False)


class TestWhenAPushDoesNotGoThrough:
    def test_stripe_refusing_the_object_fails_the_row_with_stripes_reason(self, stripe_stand_in):
        row = _row()
        stripe_stand_in.always("customers.create", refused("Invalid email address: not-an-email"))

        assert mirror_sync(record_id=row.pk) == SyncOutcome.FAILED

        row = _fresh(row)
        assert (row.state, row.lease_owner) == (MirrorState.FAILED, "")
        assert row.last_error == "Invalid email address: not-an-email (request None)"

    def test_an_object_gone_here_fails_its_row(self, stripe_stand_in):
        row = _row(MirrorKind.PRODUCT, object_id=999_999)

        assert mirror_sync(record_id=row.pk) == SyncOutcome.FAILED
        assert _fresh(row).last_error == "the product no longer exists locally"
        assert stripe_stand_in.calls == []

    def test_stripe_out_of_reach_gives_the_lease_back_for_a_retry(self, stripe_stand_in):
        row = _row()
        stripe_stand_in.always("customers.create", unreachable())

        with pytest.raises(StripeUnavailable):
            mirror_sync(record_id=row.pk)

        row = _fresh(row)
        assert (row.state, row.lease_owner, row.attempts) == (MirrorState.PENDING, "", 1)
        assert row.last_error.startswith("StripeUnavailable: Stripe answered nothing")

    def test_a_retryable_error_from_outside_the_gateway_is_a_retry_not_a_failure(self, monkeypatch):
        row = _row()

        def busy(record, owner):  # as dj-stripe fetching a related object might raise
            raise stripe.RateLimitError("Too many requests", http_status=429)

        monkeypatch.setitem(sync.PUSHERS, MirrorKind.USER, busy)

        with pytest.raises(StripeUnavailable, match="Too many requests"):
            mirror_sync(record_id=row.pk)

        row = _fresh(row)
        assert (row.state, row.lease_owner) == (MirrorState.PENDING, "")
        assert row.last_error == "RateLimitError: Too many requests"

    def test_a_push_stopped_by_ctrl_c_gives_the_lease_back_at_once(self, monkeypatch):
        row = _row()

        def interrupted(record, owner):
            raise KeyboardInterrupt

        monkeypatch.setitem(sync.PUSHERS, MirrorKind.USER, interrupted)

        with pytest.raises(KeyboardInterrupt):
            mirror_sync(record_id=row.pk)

        assert (_fresh(row).lease_owner, _fresh(row).lease_until) == ("", None)

    def test_a_push_whose_lease_a_successor_took_over_records_nothing(self, stripe_stand_in):
        row = _row()

        def taken_over_meanwhile(call):
            MirrorRecord.objects.filter(pk=row.pk).update(lease_owner="task:successor")
            return _customer(call)

        stripe_stand_in.always("customers.create", taken_over_meanwhile)

        assert mirror_sync(record_id=row.pk) == SyncOutcome.LEASE_LOST
        assert (_fresh(row).stripe_id, _fresh(row).lease_owner) == ("", "task:successor")

    def test_a_stripe_object_that_mirrors_another_row_already_is_a_conflict(self, stripe_stand_in):
        _row(stripe_id="cus_1", state=MirrorState.SYNCED, synced_version=1)
        row = _row()
        stripe_stand_in.always("customers.create", _customer)  # answers cus_1 again

        assert mirror_sync(record_id=row.pk) == SyncOutcome.CONFLICT
        assert _fresh(row).state == MirrorState.FAILED


class TestPricesAndTheirProduct:
    def test_a_price_whose_product_has_no_row_yet_waits_and_its_product_is_sent(
        self, stripe_stand_in, queued_tasks, django_capture_on_commit_callbacks
    ):
        price = PriceFactory()
        row = _row(MirrorKind.PRICE, price.pk)

        with django_capture_on_commit_callbacks(execute=True):
            outcome = mirror_sync(record_id=row.pk)

        product_row = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=price.product_id)
        assert outcome == SyncOutcome.WAITING
        assert (_fresh(row).lease_owner, _fresh(row).attempts) == ("", 0)  # it never took the lease
        assert product_row.state == MirrorState.PENDING
        assert _syncs(queued_tasks) == [product_row.pk]
        assert stripe_stand_in.calls == []

    def test_a_price_whose_product_is_on_its_way_waits_for_it(
        self, stripe_stand_in, queued_tasks, django_capture_on_commit_callbacks
    ):
        price = PriceFactory()
        _row(MirrorKind.PRODUCT, price.product_id)
        row = _row(MirrorKind.PRICE, price.pk)

        with django_capture_on_commit_callbacks(execute=True):
            assert mirror_sync(record_id=row.pk) == SyncOutcome.WAITING

        assert _syncs(queued_tasks) == []
        assert stripe_stand_in.calls == []

    def test_a_price_whose_product_stripe_refused_fails_in_its_turn(self, stripe_stand_in):
        price = PriceFactory()
        _row(MirrorKind.PRODUCT, price.product_id, state=MirrorState.FAILED, last_error="Invalid name")
        row = _row(MirrorKind.PRICE, price.pk)

        assert mirror_sync(record_id=row.pk) == SyncOutcome.FAILED
        assert _fresh(row).last_error == "its product could not be mirrored: Invalid name"

    def test_a_products_first_push_sends_the_prices_that_waited_for_it(
        self, stripe_stand_in, queued_tasks, django_capture_on_commit_callbacks
    ):
        product = ProductFactory(description="")
        first, second = PriceFactory(product=product), PriceFactory(product=product)
        row = _row(MirrorKind.PRODUCT, product.pk)
        _row(MirrorKind.PRICE, first.pk)
        waiting = _row(MirrorKind.PRICE, second.pk)
        stripe_stand_in.always("products.create", _product)

        with django_capture_on_commit_callbacks(execute=True):
            assert mirror_sync(record_id=row.pk) == SyncOutcome.SYNCED

        # The first price went with the product's creation; the second is sent on its own now.
        assert _syncs(queued_tasks) == [waiting.pk]
        assert MirrorRecord.objects.get(kind=MirrorKind.PRICE, object_id=first.pk).stripe_id == "price_first"

    def test_a_product_stripe_refuses_sends_its_waiting_prices_on_to_fail(
        self, stripe_stand_in, queued_tasks, django_capture_on_commit_callbacks
    ):
        product = ProductFactory(description="")
        price = PriceFactory(product=product, active=False)  # not embedded in the product's creation
        row = _row(MirrorKind.PRODUCT, product.pk)
        waiting = _row(MirrorKind.PRICE, price.pk)
        stripe_stand_in.always("products.create", refused("Invalid tax code"))

        with django_capture_on_commit_callbacks(execute=True):
            assert mirror_sync(record_id=row.pk) == SyncOutcome.FAILED

        assert _syncs(queued_tasks) == [waiting.pk]

    def test_an_update_of_a_product_in_stripe_sends_no_prices(
        self, stripe_stand_in, queued_tasks, django_capture_on_commit_callbacks
    ):
        product = ProductFactory(description="")
        row = _row(MirrorKind.PRODUCT, product.pk, stripe_id="prod_1", synced_version=1, version=2)
        _row(MirrorKind.PRICE, PriceFactory(product=product).pk)
        stripe_stand_in.always("products.update", _product)

        with django_capture_on_commit_callbacks(execute=True):
            assert mirror_sync(record_id=row.pk) == SyncOutcome.SYNCED

        assert _syncs(queued_tasks) == []


# Each statement, each transaction's BEGIN and COMMIT, Redis commands and Stripe calls (tools/bench/costs.py).
round_trips = counted


@pytest.mark.django_db(transaction=True)
def test_a_product_made_in_stripe_with_its_price_costs_the_worker_14_round_trips_and_2_commits(
    stripe_stand_in, queued_tasks
):
    """The lease, the read, the claim of its first price, one Stripe write, then everything Stripe answered
    recorded at once: both rows, dj-stripe's two copies and the watermark."""
    with transaction.atomic():
        product = catalog.product_create(name="Teapot")
        price = catalog.price_create(product=product, unit_amount=4500, currency="eur")
    row = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=product.pk)
    stripe_stand_in.always("products.create", _product)

    with round_trips() as counted:
        assert mirror_sync(record_id=row.pk) == SyncOutcome.SYNCED

    assert MirrorRecord.objects.get(kind=MirrorKind.PRICE, object_id=price.pk).stripe_id == "price_first"
    assert _fresh(row).state == MirrorState.SYNCED
    assert counted["round_trips"] <= 14, "\n".join(counted["statements"])
    assert counted["commits"] <= 2, "\n".join(counted["statements"])
