"""What a sync reports is what happened: a lost lease or a Stripe object that mirrors another row is never
"synced"; and a price written while its product is on its way to Stripe never sleeps until the beat."""

import threading
import time
import uuid

import pytest
import stripe
from django.db import transaction
from django.utils import timezone
from djstripe import models as djstripe_models

from apps.catalog import services as catalog
from apps.payments.mirror import lease_heartbeats, leases, sync
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.mirror.outcomes import Completion, Pushed, SyncOutcome
from apps.users import services as users
from tests.payments.factories import MirrorRecordFactory
from tests.payments.helpers import PASSWORD, broker_unreachable, events_settled, settled, wait_until

pytestmark = pytest.mark.integration


def _client(emulator) -> stripe.StripeClient:
    return stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url})


@pytest.mark.django_db(transaction=True)
def test_a_push_whose_lease_was_taken_over_reports_the_loss_not_a_sync(mirror_on):
    mirror_on.add_fault(latency_ms=1500, count=1, path_prefix="/v1/products", method="POST")
    with broker_unreachable():  # only this test runs the sync
        product = catalog.product_create(name="Kettle")
    record = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=product.pk)
    outcomes = []
    pushing = threading.Thread(target=lambda: outcomes.append(sync.mirror_sync(record_id=record.pk, owner="task:a")))

    pushing.start()
    wait_until(lambda: MirrorRecord.objects.filter(pk=record.pk, lease_owner="task:a").exists())
    MirrorRecord.objects.filter(pk=record.pk).update(lease_owner="task:b")  # its lease ran out; b took over
    pushing.join()

    record.refresh_from_db()
    assert outcomes == [SyncOutcome.LEASE_LOST]
    assert (record.state, record.synced_version, record.lease_owner) == (MirrorState.PENDING, 0, "task:b")


@pytest.mark.django_db
def test_a_stripe_object_that_mirrors_another_row_fails_the_row_instead_of_syncing_it():
    MirrorRecordFactory(stripe_id="prod_taken", state=MirrorState.SYNCED, synced_version=1)
    second = MirrorRecordFactory()
    leased = leases.acquire(second.pk, "task:x")

    completion = leases.complete(second.pk, "task:x", leased.version, Pushed("prod_taken"))

    second.refresh_from_db()
    assert completion == Completion.CONFLICT
    assert (second.state, second.synced_version, second.stripe_id) == (MirrorState.FAILED, 0, "")
    assert "prod_taken already mirrors another local object" in second.last_error


@pytest.mark.django_db(transaction=True)
def test_a_push_that_lands_on_another_rows_stripe_object_is_a_conflict_not_a_sync(mirror_on):
    with broker_unreachable():  # only this test runs the sync
        first = users.user_create(email="first@example.com", password=PASSWORD)
        second = users.user_create(email="second@example.com", password=PASSWORD)
    rows = [MirrorRecord.objects.get(kind=MirrorKind.USER, object_id=user.pk) for user in (first, second)]
    assert [sync.mirror_sync(record_id=row.pk) for row in rows] == [SyncOutcome.SYNCED] * 2
    first_customer, second_customer = (MirrorRecord.objects.get(pk=row.pk).stripe_id for row in rows)
    # The second user's customer is gone, and someone put its ref on the first user's customer: the push looks
    # for its customer by ref and finds one another row mirrors.
    _client(mirror_on).v1.customers.delete(second_customer)
    _client(mirror_on).v1.customers.update(first_customer, params={"metadata": {"app_ref": rows[1].app_ref}})
    with broker_unreachable():
        users.user_update(user=second, data={"name": "Second"})  # a new version to push

    outcome = sync.mirror_sync(record_id=rows[1].pk)

    second_row = MirrorRecord.objects.get(pk=rows[1].pk)
    assert outcome == SyncOutcome.CONFLICT
    assert second_row.state == MirrorState.FAILED
    assert second_row.stripe_id != first_customer
    assert f"{first_customer} already mirrors another local object" in second_row.last_error
    assert MirrorRecord.objects.get(pk=rows[0].pk).stripe_id == first_customer


def test_a_price_written_while_its_product_is_on_its_way_reaches_stripe_within_seconds(mirror):
    """The product's task records it in Stripe while the price's transaction is still open: the price saw
    the product on its way and was not queued, so the product's task must release it after committing."""
    mirror.add_fault(latency_ms=300, path_prefix="/v1/products", method="POST")
    prices = []
    for n in range(6):
        product = catalog.product_create(name=f"Raced {n}")  # committed: its task creates it in Stripe now
        time.sleep(0.1)  # the creation is in flight
        with transaction.atomic():
            prices.append(catalog.price_create(product=product, unit_amount=100 + n, currency="usd"))
            time.sleep(0.5)  # the product's Stripe call returns before this price commits

    # Well inside the 60 s after which the beat would find a sleeping row (and no beat runs here).
    wait_until(settled, timeout=15, message="every price in Stripe")
    records = MirrorRecord.objects.filter(kind=MirrorKind.PRICE, object_id__in=[p.pk for p in prices])
    assert sorted(records.values_list("state", flat=True)) == [MirrorState.SYNCED] * len(prices)
    in_stripe = {p.metadata["app_ref"] for p in _client(mirror).v1.prices.list(params={"limit": 100}).data}
    assert {f"catalog.price:{p.pk}" for p in prices} <= in_stripe


def test_a_dashboard_edit_also_refreshes_djstripes_own_copy(webhooks):
    with transaction.atomic():
        product = catalog.product_create(name="Teapot")
        catalog.price_create(product=product, unit_amount=4500, currency="eur")
    wait_until(settled, message="the mirror")
    stripe_id = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=product.pk).stripe_id
    assert djstripe_models.Product.objects.get(id=stripe_id).name == "Teapot"

    _client(webhooks).v1.products.update(stripe_id, params={"name": "Renamed in the dashboard"})
    assert webhooks.wait_for_webhooks(20)
    wait_until(events_settled, message="event processing")

    copy = djstripe_models.Product.objects.get(id=stripe_id)
    assert (copy.name, copy.stripe_data["name"]) == ("Renamed in the dashboard", "Renamed in the dashboard")


def test_a_dashboard_edit_of_a_prices_nickname_or_metadata_refreshes_djstripes_copy(webhooks):
    with transaction.atomic():
        product = catalog.product_create(name="Teapot")
        price = catalog.price_create(product=product, unit_amount=4500, currency="eur")
    wait_until(settled, message="the mirror")
    stripe_id = MirrorRecord.objects.get(kind=MirrorKind.PRICE, object_id=price.pk).stripe_id
    assert djstripe_models.Price.objects.get(id=stripe_id).nickname == ""

    edit = {"nickname": "Launch price", "metadata": {"campaign": "spring"}}
    _client(webhooks).v1.prices.update(stripe_id, params=edit)
    assert webhooks.wait_for_webhooks(20)
    wait_until(events_settled, message="event processing")

    copy = djstripe_models.Price.objects.get(id=stripe_id)
    assert (copy.nickname, copy.stripe_data["nickname"]) == ("Launch price", "Launch price")
    assert copy.metadata["campaign"] == copy.stripe_data["metadata"]["campaign"] == "spring"
    price.refresh_from_db()
    assert (price.unit_amount, price.active) == (4500, True)  # the catalog keeps neither: it is unchanged


@pytest.mark.django_db
def test_a_task_that_gives_up_answers_the_failed_outcome_and_fails_the_row(settings, monkeypatch):
    from apps.payments.gateway.errors import StripeUnavailable
    from apps.payments.mirror.tasks import mirror_sync_task

    record = MirrorRecordFactory()

    def unreachable(**kwargs):
        raise StripeUnavailable("Stripe cannot be reached")

    monkeypatch.setattr(sync, "mirror_sync", unreachable)

    outcome = mirror_sync_task.apply(args=[record.pk], retries=settings.MIRROR_MAX_TASK_RETRIES).get()

    assert outcome is SyncOutcome.FAILED
    record.refresh_from_db()
    assert record.state == MirrorState.FAILED
    assert "Stripe cannot be reached" in record.last_error


@pytest.mark.django_db(transaction=True)
def test_a_lease_whose_holder_was_killed_is_taken_over_at_once(mirror_on):
    """A worker killed mid-push leaves its lease for two minutes; its process's heartbeat stops at once."""
    with broker_unreachable():  # only this test runs the sync
        product = catalog.product_create(name="Kettle")
    record = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=product.pk)
    MirrorRecord.objects.filter(pk=record.pk).update(
        lease_owner=f"task:killed-{uuid.uuid4().hex}", lease_until=timezone.now() + leases.lease_length()
    )

    outcome = sync.mirror_sync(record_id=record.pk)

    record.refresh_from_db()
    assert outcome == SyncOutcome.SYNCED
    assert record.state == MirrorState.SYNCED
    assert _client(mirror_on).v1.products.retrieve(record.stripe_id).name == "Kettle"


@pytest.mark.django_db(transaction=True)
def test_a_lease_whose_holder_still_pushes_is_left_to_it(mirror_on):
    with broker_unreachable():
        product = catalog.product_create(name="Kettle")
    record = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=product.pk)
    alive = f"task:alive-{uuid.uuid4().hex}"
    MirrorRecord.objects.filter(pk=record.pk).update(
        lease_owner=alive, lease_until=timezone.now() + leases.lease_length()
    )

    with lease_heartbeats.keep_alive(alive):
        time.sleep(lease_heartbeats.REFRESH_SECONDS + 1)  # its heartbeat outlives a beat
        outcome = sync.mirror_sync(record_id=record.pk)

    record.refresh_from_db()
    assert outcome == SyncOutcome.NOTHING_TO_DO
    assert (record.state, record.lease_owner, record.stripe_id) == (MirrorState.PENDING, alive, "")
    # Once it is gone, the next pusher takes over without waiting for the lease to run out.
    assert sync.mirror_sync(record_id=record.pk) == SyncOutcome.SYNCED


@pytest.mark.django_db(transaction=True)
def test_a_price_made_by_an_attempt_that_never_recorded_it_is_archived_when_the_price_changes(mirror_on):
    """A worker killed between making a Stripe price and recording it: the row still names the price before,
    and the next attempt (a newer amount, so another key) must not leave the unrecorded one on sale."""
    with broker_unreachable():
        product = catalog.product_create(name="Kettle")
        price = catalog.price_create(product=product, unit_amount=3000, currency="eur")
    sync.mirror_sync(record_id=MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=product.pk).pk)
    record = MirrorRecord.objects.get(kind=MirrorKind.PRICE, object_id=price.pk)
    stripe_product = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=product.pk).stripe_id
    client = _client(mirror_on)
    unrecorded = client.v1.prices.create(
        params={"product": stripe_product, "unit_amount": 3500, "currency": "eur", "metadata": {
            "app_ref": record.app_ref, "app_namespace": "testsuite"}}
    )  # fmt: skip
    MirrorRecord.objects.filter(pk=record.pk).update(attempts=1)  # the killed attempt counted
    with broker_unreachable():
        catalog.price_update(price=price, data={"unit_amount": 4000})

    assert sync.mirror_sync(record_id=record.pk) == SyncOutcome.SYNCED

    live = list(client.v1.prices.list(params={"product": stripe_product, "active": True}).data)
    record.refresh_from_db()
    assert [(p.id, p.unit_amount) for p in live] == [(record.stripe_id, 4000)]
    assert client.v1.prices.retrieve(unrecorded.id).active is False
