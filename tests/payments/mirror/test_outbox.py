"""The mirror's outbox (apps/payments/mirror/outbox.py): a local change becomes a new version of its object's
mirror row, in the write's own transaction, and the push is queued once it commits (a creation at once, an edit
after a moment so quick edits leave as one); a change that came from Stripe is no echo; a price whose product is
on its way waits for it; the beat queues rows left pending; an operator's retry is a new version.

Here the rows and what is published to the broker, with no worker. The mirror end to end (a real worker, the
emulator) is covered in tests/journeys/test_mirror.py and tests/journeys/test_mirror_faults.py (a broker down at
commit, quick edits coalesced).
"""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.catalog import services as catalog
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.mirror.outbox import (
    MIRROR_SYNC_TASK,
    changes_from_stripe,
    mirror_again,
    mirror_give_up,
    mirror_record_change,
    release_waiting_prices,
    requeue_stale,
)
from tests.catalog.factories import PriceFactory
from tests.payments.factories import MirrorRecordFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def mirror_on(settings):
    settings.STRIPE_MIRROR_ENABLED = True
    settings.MIRROR_COALESCE_SECONDS = 1.0


def _row(kind: str = MirrorKind.PRODUCT, object_id: int = 7) -> MirrorRecord:
    return MirrorRecord.objects.get(kind=kind, object_id=object_id)


def _record(capture, **change) -> None:
    with capture(execute=True):
        mirror_record_change(**{"kind": MirrorKind.PRODUCT, "object_id": 7, **change})


class TestRecordingAChange:
    def test_a_new_object_gets_a_pending_row_and_is_pushed_at_once_after_commit(
        self, queued_tasks, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=False) as on_commit:
            mirror_record_change(kind=MirrorKind.PRODUCT, object_id=7)
            assert queued_tasks == []  # nothing before the write commits
        for callback in on_commit:
            callback()

        row = _row()
        assert (row.state, row.version, row.synced_version) == (MirrorState.PENDING, 1, 0)
        assert row.pending_since is not None
        assert queued_tasks == [(MIRROR_SYNC_TASK, (row.pk,), None)]

    def test_an_edit_is_a_new_version_pushed_after_a_moment_so_quick_edits_leave_as_one(
        self, queued_tasks, django_capture_on_commit_callbacks
    ):
        _record(django_capture_on_commit_callbacks)
        first_pending_since = _row().pending_since

        _record(django_capture_on_commit_callbacks)

        row = _row()
        assert row.version == 2
        assert row.pending_since == first_pending_since  # waiting since the first change not yet in Stripe
        assert queued_tasks[-1] == (MIRROR_SYNC_TASK, (row.pk,), 1.0)

    def test_a_change_after_the_last_reached_stripe_is_pending_from_now(
        self, queued_tasks, django_capture_on_commit_callbacks
    ):
        long_ago = timezone.now() - timedelta(days=3)
        MirrorRecordFactory(
            object_id=7, state=MirrorState.SYNCED, version=4, synced_version=4, stripe_id="prod_7", pending_since=None
        )
        MirrorRecord.objects.filter(object_id=7).update(synced_at=long_ago)

        _record(django_capture_on_commit_callbacks)

        row = _row()
        assert (row.state, row.version, row.synced_version, row.stripe_id) == (MirrorState.PENDING, 5, 4, "prod_7")
        assert timezone.now() - row.pending_since < timedelta(minutes=1)

    def test_a_deletion_is_recorded_for_the_pusher(self, queued_tasks, django_capture_on_commit_callbacks):
        MirrorRecordFactory(kind=MirrorKind.USER, object_id=7, state=MirrorState.SYNCED, stripe_id="cus_7")

        _record(django_capture_on_commit_callbacks, kind=MirrorKind.USER, deleted=True)

        assert _row(MirrorKind.USER).deleted is True
        assert len(queued_tasks) == 1

    def test_a_change_that_came_from_stripe_counts_as_synced_and_is_not_sent_back(
        self, queued_tasks, django_capture_on_commit_callbacks
    ):
        MirrorRecordFactory(object_id=7, state=MirrorState.SYNCED, version=2, synced_version=2, stripe_id="prod_7")

        with changes_from_stripe():
            _record(django_capture_on_commit_callbacks)
            _record(django_capture_on_commit_callbacks, object_id=8)  # made in the dashboard

        assert [
            (r.object_id, r.state, r.version, r.synced_version) for r in MirrorRecord.objects.order_by("object_id")
        ] == [
            (7, MirrorState.SYNCED, 3, 3),
            (8, MirrorState.SYNCED, 1, 1),
        ]
        assert queued_tasks == []

    def test_with_the_mirror_off_nothing_is_recorded_or_queued(
        self, settings, queued_tasks, django_capture_on_commit_callbacks
    ):
        settings.STRIPE_MIRROR_ENABLED = False

        _record(django_capture_on_commit_callbacks)

        assert not MirrorRecord.objects.exists()
        assert queued_tasks == []


class TestTheCostOfAWrite:
    def test_a_product_with_its_price_is_written_in_at_most_twelve_round_trips(self):
        """Their rows, their mirror rows and the check for a product on its way: one statement each where it
        can be. The test's own transaction is a savepoint here, standing for BEGIN and COMMIT."""
        with CaptureQueriesContext(connection) as statements, transaction.atomic():
            product = catalog.product_create(name="Teapot")
            catalog.price_create(product=product, unit_amount=4500, currency="eur")

        assert len(statements) <= 12, "\n".join(statement["sql"] for statement in statements)
        assert MirrorRecord.objects.filter(state=MirrorState.PENDING).count() == 2

    def test_an_edit_of_a_mirrored_product_is_one_statement_for_its_row(self):
        product = catalog.product_create(name="Teapot")

        with CaptureQueriesContext(connection) as statements:
            mirror_record_change(kind=MirrorKind.PRODUCT, object_id=product.pk)

        assert len(statements) == 1
        assert _row(object_id=product.pk).version == 2


class TestPricesWaitingForTheirProduct:
    def test_a_price_of_a_product_on_its_way_to_stripe_waits_and_goes_once_the_product_is_there(
        self, queued_tasks, django_capture_on_commit_callbacks
    ):
        price = PriceFactory()
        product_row = MirrorRecordFactory(kind=MirrorKind.PRODUCT, object_id=price.product_id)  # pending, no id

        with django_capture_on_commit_callbacks(execute=True):
            mirror_record_change(kind=MirrorKind.PRICE, object_id=price.pk)
        waited = list(queued_tasks)
        with django_capture_on_commit_callbacks(execute=True):
            release_waiting_prices(product_row)

        price_row = _row(MirrorKind.PRICE, price.pk)
        assert price_row.state == MirrorState.PENDING
        assert waited == []
        assert queued_tasks == [(MIRROR_SYNC_TASK, (price_row.pk,), None)]

    def test_a_price_of_a_product_already_in_stripe_is_queued_at_once(
        self, queued_tasks, django_capture_on_commit_callbacks
    ):
        price = PriceFactory()
        MirrorRecordFactory(
            kind=MirrorKind.PRODUCT, object_id=price.product_id, state=MirrorState.SYNCED, stripe_id="prod_1"
        )

        with django_capture_on_commit_callbacks(execute=True):
            mirror_record_change(kind=MirrorKind.PRICE, object_id=price.pk)

        assert queued_tasks == [(MIRROR_SYNC_TASK, (_row(MirrorKind.PRICE, price.pk).pk,), None)]

    def test_only_pending_prices_of_that_product_are_released(self, queued_tasks, django_capture_on_commit_callbacks):
        price = PriceFactory()
        other_product_price = PriceFactory()
        product_row = MirrorRecordFactory(kind=MirrorKind.PRODUCT, object_id=price.product_id, stripe_id="prod_1")
        synced = PriceFactory(product=price.product)
        MirrorRecordFactory(kind=MirrorKind.PRICE, object_id=synced.pk, state=MirrorState.SYNCED, stripe_id="price_s")
        waiting = MirrorRecordFactory(kind=MirrorKind.PRICE, object_id=price.pk)
        MirrorRecordFactory(kind=MirrorKind.PRICE, object_id=other_product_price.pk)

        with django_capture_on_commit_callbacks(execute=True):
            release_waiting_prices(product_row)

        assert queued_tasks == [(MIRROR_SYNC_TASK, (waiting.pk,), None)]


class TestTheBeatAndOperators:
    def test_rows_left_pending_are_queued_again_unless_young_or_leased(self, queued_tasks):
        now = timezone.now()
        stale = MirrorRecordFactory(object_id=1, pending_since=now - timedelta(minutes=5))
        MirrorRecordFactory(object_id=2, pending_since=now - timedelta(seconds=10))
        MirrorRecordFactory(
            object_id=3,
            pending_since=now - timedelta(minutes=5),
            lease_owner="worker-1",
            lease_until=now + timedelta(minutes=1),
        )
        expired_lease = MirrorRecordFactory(
            object_id=4,
            pending_since=now - timedelta(minutes=5),
            lease_owner="worker-killed",
            lease_until=now - timedelta(seconds=1),
        )
        MirrorRecordFactory(object_id=5, state=MirrorState.FAILED, pending_since=now - timedelta(minutes=5))

        assert requeue_stale(older_than=timedelta(minutes=1)) == 2

        assert sorted(task[1][0] for task in queued_tasks) == sorted([stale.pk, expired_lease.pk])

    def test_an_operators_retry_of_a_failed_row_is_a_new_version_queued_again(
        self, queued_tasks, django_capture_on_commit_callbacks
    ):
        failed = MirrorRecordFactory(object_id=7, state=MirrorState.FAILED, version=3, last_error="No such product")

        with django_capture_on_commit_callbacks(execute=True):
            mirror_again(record=failed)

        row = _row()
        assert (row.state, row.version) == (MirrorState.PENDING, 4)
        assert queued_tasks == [(MIRROR_SYNC_TASK, (row.pk,), 1.0)]

    def test_giving_up_fails_the_row_with_the_reason_and_frees_its_lease(self):
        row = MirrorRecordFactory(lease_owner="worker-1", lease_until=timezone.now() + timedelta(minutes=1))

        mirror_give_up(record_id=row.pk, message="gave up after 25 tries: Stripe unavailable")

        row.refresh_from_db()
        assert (row.state, row.last_error, row.lease_owner, row.lease_until) == (
            MirrorState.FAILED,
            "gave up after 25 tries: Stripe unavailable",
            "",
            None,
        )
