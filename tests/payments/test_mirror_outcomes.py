"""What a sync reports is what happened: a lost lease or a Stripe object that mirrors another row is never
"synced"; and a price written while its product is on its way to Stripe never sleeps until the beat."""

import threading
import time

import pytest
import stripe
from django.db import transaction
from djstripe import models as djstripe_models

from apps.catalog import services as catalog
from apps.payments.mirror import leases, sync
from apps.payments.mirror.outcomes import Completion, Pushed, SyncOutcome
from apps.payments.models import MirrorKind, MirrorRecord, MirrorState
from tests.payments.factories import MirrorRecordFactory
from tests.payments.helpers import broker_unreachable, events_settled, settled, wait_until

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
