"""The lease on a mirror row (apps/payments/mirror/leases.py): one pusher per object at a time; a holder whose
process is gone is taken over at once; what a push leaves on the row (synced, again for a newer version, a lost
lease, a Stripe object that already mirrors another row); a day-old retry gets fresh idempotency keys.

Here on the rows, with lease holders kept alive in Redis as a running worker keeps itself (and a killed one by
no key at all). A worker killed mid-push and its successor, and two tasks racing for one object, are covered in
tests/journeys/test_mirror_faults.py and tests/journeys/test_mirror_outcomes.py.
"""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.payments.gateway.errors import StripeKeySpent, StripeUnavailable
from apps.payments.mirror import lease_heartbeats
from apps.payments.mirror.leases import LATE_RETRY, acquire, claim_first_price, complete, finish
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.mirror.outcomes import Completion, Pushed
from tests.catalog.factories import PriceFactory, ProductFactory
from tests.payments.factories import MirrorRecordFactory

pytestmark = pytest.mark.django_db


def _leased(owner: str = "worker-1", **fields) -> MirrorRecord:
    return MirrorRecordFactory(
        version=2, lease_owner=owner, lease_until=timezone.now() + timedelta(minutes=2), **fields
    )


def _fresh(row: MirrorRecord) -> MirrorRecord:
    return MirrorRecord.objects.get(pk=row.pk)


class TestAcquire:
    def test_a_pending_row_is_leased_for_longer_than_a_task_may_live(self, settings):
        settings.CELERY_TASK_TIME_LIMIT = 90
        row = MirrorRecordFactory(version=1)

        leased = acquire(row.pk, "worker-1")

        row = _fresh(row)
        assert leased.pk == row.pk
        assert (row.lease_owner, row.attempts) == ("worker-1", 1)
        assert row.lease_until - timezone.now() > timedelta(seconds=90)
        assert row.first_attempt_at is not None

    def test_a_row_whose_version_is_in_stripe_is_not_pushed_again_and_says_synced(self):
        row = MirrorRecordFactory(version=3, synced_version=3, state=MirrorState.PENDING, stripe_id="prod_1")

        assert acquire(row.pk, "worker-1") is None
        assert (_fresh(row).state, _fresh(row).lease_owner) == (MirrorState.SYNCED, "")

    def test_a_failed_row_is_left_for_an_operator(self):
        row = MirrorRecordFactory(state=MirrorState.FAILED)

        assert acquire(row.pk, "worker-1") is None
        assert acquire(999_999, "worker-1") is None

    def test_a_row_another_running_worker_holds_is_left_to_it(self):
        row = _leased("worker-1")

        with lease_heartbeats.keep_alive("worker-1"):
            assert acquire(row.pk, "worker-2") is None

        assert _fresh(row).lease_owner == "worker-1"

    def test_a_lease_whose_holder_is_gone_is_taken_over_at_once(self, caplog):
        row = _leased("worker-killed")  # no heartbeat: its process is gone

        with caplog.at_level(logging.WARNING, logger="apps.payments.mirror"):
            assert acquire(row.pk, "worker-2") is not None

        assert _fresh(row).lease_owner == "worker-2"
        assert "mirror lease taken over" in caplog.text
        assert "from=worker-killed" in caplog.text

    def test_a_lease_that_ran_out_is_taken_even_from_a_live_holder(self):
        row = MirrorRecordFactory(version=2, lease_owner="worker-1", lease_until=timezone.now() - timedelta(seconds=1))

        with lease_heartbeats.keep_alive("worker-1"):
            assert acquire(row.pk, "worker-2") is not None

    def test_a_redelivered_task_takes_its_own_lease_again(self):
        row = _leased("task-abc")

        with lease_heartbeats.keep_alive("task-abc"):
            assert acquire(row.pk, "task-abc") is not None

        assert _fresh(row).attempts == 1

    def test_a_retry_a_day_after_the_first_attempt_gets_new_keys(self):
        row = MirrorRecordFactory(version=1, first_attempt_at=timezone.now() - LATE_RETRY - timedelta(minutes=1))
        recent = MirrorRecordFactory(version=1, first_attempt_at=timezone.now() - timedelta(hours=1))

        acquire(row.pk, "worker-1")
        acquire(recent.pk, "worker-1")

        assert (_fresh(row).key_generation, _fresh(recent).key_generation) == (1, 0)
        assert timezone.now() - _fresh(row).first_attempt_at < timedelta(minutes=1)


class TestComplete:
    def test_the_version_stripe_holds_is_recorded_and_the_lease_freed(self):
        row = _leased(attempts=3, pushed={"metadata_keys": ["a"]})

        done = complete(row.pk, "worker-1", 2, Pushed("prod_1", {"immutable": {"x": 1}}))

        row = _fresh(row)
        assert done == Completion.DONE
        assert (row.state, row.stripe_id, row.synced_version, row.attempts) == (MirrorState.SYNCED, "prod_1", 2, 0)
        assert (row.lease_owner, row.lease_until, row.pending_since) == ("", None, None)
        assert row.pushed == {"metadata_keys": ["a"], "immutable": {"x": 1}}

    def test_a_newer_version_written_meanwhile_keeps_the_row_pending_and_leased_for_it(self):
        row = _leased()
        MirrorRecord.objects.filter(pk=row.pk).update(version=3)  # an edit during the push

        again = complete(row.pk, "worker-1", 2, Pushed("prod_1"))

        row = _fresh(row)
        assert again == Completion.AGAIN
        assert (row.state, row.synced_version, row.lease_owner) == (MirrorState.PENDING, 2, "worker-1")

    def test_a_push_whose_lease_was_taken_over_records_nothing(self, caplog):
        row = _leased("worker-2")

        with caplog.at_level(logging.WARNING, logger="apps.payments.mirror"):
            lost = complete(row.pk, "worker-1", 2, Pushed("prod_1"))

        assert lost == Completion.LEASE_LOST
        assert (_fresh(row).stripe_id, _fresh(row).synced_version) == ("", 0)
        assert "mirror lease lost" in caplog.text

    def test_a_stripe_object_that_already_mirrors_another_row_fails_this_one(self):
        MirrorRecordFactory(stripe_id="prod_taken", state=MirrorState.SYNCED)
        row = _leased()

        conflict = complete(row.pk, "worker-1", 2, Pushed("prod_taken"))

        row = _fresh(row)
        assert conflict == Completion.CONFLICT
        assert (row.state, row.stripe_id, row.lease_owner) == (MirrorState.FAILED, "", "")
        assert row.last_error == "prod_taken already mirrors another local object"


class TestFinish:
    def test_a_push_that_did_not_finish_gives_the_lease_back_with_its_error(self):
        row = _leased()

        finish(row.pk, "worker-1", error=StripeUnavailable("Stripe answered 503 4 times"))

        row = _fresh(row)
        assert (row.state, row.lease_owner, row.key_generation) == (MirrorState.PENDING, "", 0)
        assert row.last_error == "StripeUnavailable: Stripe answered 503 4 times"

    def test_a_key_stripe_remembers_for_a_failure_is_never_used_again(self):
        row = _leased()

        finish(row.pk, "worker-1", error=StripeKeySpent("replayed failure"))

        assert _fresh(row).key_generation == 1

    def test_a_refusal_for_good_fails_the_row_with_stripes_reason(self):
        row = _leased()

        finish(row.pk, "worker-1", failure="Invalid currency (request req_1)")

        assert (_fresh(row).state, _fresh(row).last_error) == (MirrorState.FAILED, "Invalid currency (request req_1)")

    def test_a_lease_someone_else_holds_now_is_not_given_back(self):
        row = _leased("worker-2")

        finish(row.pk, "worker-1", failure="too late")

        assert (_fresh(row).lease_owner, _fresh(row).state) == ("worker-2", MirrorState.PENDING)


class TestClaimFirstPrice:
    def test_the_first_active_price_not_in_stripe_yet_is_claimed_with_its_product(self):
        product = ProductFactory()
        archived = PriceFactory(product=product, active=False)
        synced = PriceFactory(product=product)
        first = PriceFactory(product=product)
        PriceFactory(product=product)
        MirrorRecordFactory(kind=MirrorKind.PRICE, object_id=archived.pk)
        MirrorRecordFactory(kind=MirrorKind.PRICE, object_id=synced.pk, stripe_id="price_s", state=MirrorState.SYNCED)
        MirrorRecordFactory(kind=MirrorKind.PRICE, object_id=first.pk)
        product_row = MirrorRecordFactory(kind=MirrorKind.PRODUCT, object_id=product.pk)

        claimed_row = claim_first_price(product_row, "worker-1", timezone.now())

        assert (claimed_row.object_id, _fresh(claimed_row).lease_owner) == (first.pk, "worker-1")

    def test_a_products_first_lease_takes_its_first_price_along(self):
        price = PriceFactory()
        product_row = MirrorRecordFactory(kind=MirrorKind.PRODUCT, object_id=price.product_id)
        price_row = MirrorRecordFactory(kind=MirrorKind.PRICE, object_id=price.pk)

        leased = acquire(product_row.pk, "worker-1")

        assert leased.claimed.pk == price_row.pk
        assert _fresh(price_row).lease_owner == "worker-1"

    def test_a_price_a_running_worker_pushes_is_not_claimed(self):
        price = PriceFactory()
        MirrorRecordFactory(
            kind=MirrorKind.PRICE,
            object_id=price.pk,
            lease_owner="worker-2",
            lease_until=timezone.now() + timedelta(minutes=1),
        )

        product_row = MirrorRecordFactory(kind=MirrorKind.PRODUCT, object_id=price.product_id)

        with lease_heartbeats.keep_alive("worker-2"):
            assert claim_first_price(product_row, "worker-1", timezone.now()) is None
