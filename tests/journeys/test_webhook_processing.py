"""Events processed once, in a safe order, by a real worker; dashboard edits come back, our echoes do not."""

from datetime import timedelta

import pytest
import requests
import stripe
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from apps.catalog import services as catalog
from apps.catalog.models import Price, Product
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from apps.users import services as users
from tests.payments.helpers import events_settled, settled, wait_until
from tests.payments.webhook_signing import body, event, signature

pytestmark = pytest.mark.integration
PASSWORD = "a-long-unusual-passphrase-42"


def _client(emulator) -> stripe.StripeClient:
    return stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url})


def _all_quiet(emulator) -> None:
    """The mirror, Stripe's deliveries and our processing have all finished."""
    for _ in range(3):  # each can start the others again
        wait_until(settled, message="the mirror")
        assert emulator.wait_for_webhooks(20)
        wait_until(events_settled, message="event processing")


def _mirrored_product(emulator, name="Teapot"):
    with transaction.atomic():
        product = catalog.product_create(name=name, description="Cast iron")
        price = catalog.price_create(product=product, unit_amount=4500, currency="eur")
    _all_quiet(emulator)
    return product, price, MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=product.pk)


def _writes(emulator) -> list[dict]:
    return [r for r in emulator.requests_seen(method="POST") if r["status"] == 200]


ECHO_OUTCOMES = ("unchanged (our own write, or already applied)", "skipped: a local change is on its way to Stripe")


def test_our_own_writes_come_back_as_echoes_that_change_nothing(webhooks):
    product, _, record = _mirrored_product(webhooks)
    writes_before = len(_writes(webhooks))

    catalog.product_update(product=product, data={"name": "Teapot (large)"})
    _all_quiet(webhooks)

    echoes = WebhookEvent.objects.filter(type="product.updated")
    # The echo is processed after the mirror marked its write (unchanged), or while the mirror still holds
    # it (skipped): a race between two tasks of the worker, and either way nothing changes.
    assert len(echoes) == 1
    assert echoes[0].outcome in ECHO_OUTCOMES
    assert len(_writes(webhooks)) == writes_before + 1  # the one update; nothing bounced back
    assert MirrorRecord.objects.get(pk=record.pk).state == MirrorState.SYNCED


def test_a_dashboard_edit_comes_back_into_the_catalog_and_is_not_sent_back(webhooks):
    product, _, record = _mirrored_product(webhooks)
    writes_before = len(_writes(webhooks))

    _client(webhooks).v1.products.update(
        record.stripe_id, params={"name": "Renamed in the dashboard", "metadata": {"shelf": "B2"}}
    )
    _all_quiet(webhooks)

    product.refresh_from_db()
    assert (product.name, product.metadata) == ("Renamed in the dashboard", {"shelf": "B2"})
    record.refresh_from_db()
    assert (record.state, record.synced_version) == (MirrorState.SYNCED, record.version)
    assert len(_writes(webhooks)) == writes_before + 1  # only the dashboard's own write


def test_a_product_made_in_the_dashboard_becomes_a_local_product_with_its_price(webhooks):
    client = _client(webhooks)

    made = client.v1.products.create(
        params={"name": "Dashboard mug", "default_price_data": {"currency": "usd", "unit_amount": 1200}}
    )
    _all_quiet(webhooks)

    product = Product.objects.get(name="Dashboard mug")
    price = Price.objects.get(product=product)
    assert (price.unit_amount, price.currency, price.active) == (1200, "usd", True)
    product_record = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=product.pk)
    price_record = MirrorRecord.objects.get(kind=MirrorKind.PRICE, object_id=price.pk)
    assert (product_record.stripe_id, price_record.stripe_id) == (made.id, made.default_price)
    # Our app_ref is written into Stripe, so reconciling and later events find the local rows.
    assert client.v1.products.retrieve(made.id).metadata.app_ref == f"catalog.product:{product.pk}"
    assert client.v1.prices.retrieve(made.default_price).metadata.app_ref == f"catalog.price:{price.pk}"
    assert Product.objects.filter(name="Dashboard mug").count() == 1


def test_dashboard_archive_and_delete_archive_locally(webhooks):
    _, price, _ = _mirrored_product(webhooks)
    bare = catalog.product_create(name="No prices")
    _all_quiet(webhooks)
    client = _client(webhooks)
    bare_id = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=bare.pk).stripe_id
    price_id = MirrorRecord.objects.get(kind=MirrorKind.PRICE, object_id=price.pk).stripe_id

    client.v1.prices.update(price_id, params={"active": False})
    client.v1.products.delete(bare_id)
    _all_quiet(webhooks)

    price.refresh_from_db()
    bare.refresh_from_db()
    assert price.active is False
    assert bare.active is False


def test_a_deleted_customer_is_unlinked_from_its_user(webhooks):
    user = users.user_create(email="ada@example.com", password=PASSWORD)
    _all_quiet(webhooks)
    record = MirrorRecord.objects.get(kind=MirrorKind.USER, object_id=user.pk)

    _client(webhooks).v1.customers.delete(record.stripe_id)
    _all_quiet(webhooks)

    record.refresh_from_db()
    assert record.stripe_id == ""
    assert WebhookEvent.objects.get(type="customer.deleted").outcome == "unlinked the deleted customer from its user"


def _deliver(live_server, payload: dict) -> int:
    data = body(payload)
    from django.conf import settings

    response = requests.post(
        f"{live_server.url}/stripe/webhook/",
        data=data,
        headers={
            "Stripe-Signature": signature(data, settings.STRIPE_WEBHOOK_SECRETS[0]),
            "Content-Type": "application/json",
        },
        timeout=10,
    )
    return response.status_code


def test_an_older_update_after_a_newer_one_changes_nothing(webhooks, live_server):
    product, _, record = _mirrored_product(webhooks)
    stripe_product = _client(webhooks).v1.products.retrieve(record.stripe_id).to_dict()
    newer = {**stripe_product, "name": "Newest name", "updated": stripe_product["updated"] + 20}
    older = {**stripe_product, "name": "Older name", "updated": stripe_product["updated"] + 10}

    assert _deliver(live_server, event("product.updated", newer, event_id="evt_newer")) == 200
    assert _deliver(live_server, event("product.updated", older, event_id="evt_older")) == 200
    _all_quiet(webhooks)

    product.refresh_from_db()
    assert product.name == "Newest name"
    assert (
        WebhookEvent.objects.get(stripe_id="evt_older").outcome
        == "stale: a newer state of this product was applied already"
    )


def test_updated_before_created_ends_with_the_newest_state(webhooks, live_server):
    made = _client(webhooks)
    webhooks.control("POST", "webhooks", {"paused": True})  # we deliver this product's events ourselves, reversed
    created = made.v1.products.create(params={"name": "First name"}).to_dict()
    later = {**created, "name": "Second name", "updated": created["updated"] + 5}

    assert _deliver(live_server, event("product.updated", later, event_id="evt_update_first")) == 200
    assert _deliver(live_server, event("product.created", created, event_id="evt_create_second")) == 200
    wait_until(events_settled)
    webhooks.control("POST", "webhooks", {"paused": False})
    _all_quiet(webhooks)

    assert list(Product.objects.filter(name__in=["First name", "Second name"]).values_list("name", flat=True)) == [
        "Second name"
    ]


def test_a_stale_price_event_is_checked_against_stripe(webhooks, live_server):
    _, price, _ = _mirrored_product(webhooks)
    price_id = MirrorRecord.objects.get(kind=MirrorKind.PRICE, object_id=price.pk).stripe_id
    stale = {**_client(webhooks).v1.prices.retrieve(price_id).to_dict(), "active": False}  # never true in Stripe

    assert _deliver(live_server, event("price.updated", stale, event_id="evt_stale_price")) == 200
    _all_quiet(webhooks)

    price.refresh_from_db()
    assert price.active is True
    assert WebhookEvent.objects.get(stripe_id="evt_stale_price").outcome == "unchanged (Stripe holds what we hold)"


def test_duplicated_and_shuffled_delivery_processes_each_event_once(webhooks):
    webhooks.control("POST", "webhooks", {"duplicate_ratio": 1.0, "shuffle": True})

    products = [_mirrored_product(webhooks, name=f"Shuffled {n}")[0] for n in range(3)]

    events = WebhookEvent.objects.all()
    assert all(e.deliveries == 2 for e in events)
    assert all(e.attempts == 1 for e in events if e.state == WebhookEventState.PROCESSED)
    assert Product.objects.count() == len(products)


def test_unhandled_types_are_stored_and_ignored(webhooks, live_server):
    assert (
        _deliver(live_server, event("invoice.finalized", {"id": "in_1", "object": "invoice"}, event_id="evt_invoice"))
        == 200
    )
    wait_until(events_settled)

    stored = WebhookEvent.objects.get(stripe_id="evt_invoice")
    assert (stored.state, stored.outcome) == (WebhookEventState.IGNORED, "not a type this app handles")


def test_a_failing_handler_retries_for_three_days_then_is_parked_and_replayed_later(webhooks, live_server):
    _, price, _ = _mirrored_product(webhooks)
    price_id = MirrorRecord.objects.get(kind=MirrorKind.PRICE, object_id=price.pk).stripe_id
    # Stripe cannot be asked about this price for now, so its event cannot be processed.
    webhooks.add_fault(status=400, message="Temporarily refused", path_prefix=f"/v1/prices/{price_id}", method="GET")
    obj = {"id": price_id, "object": "price", "active": False, "product": "prod_x", "metadata": {}}

    assert _deliver(live_server, event("price.updated", obj, event_id="evt_parked")) == 200
    # Stripe was told 200 and will not send it again: six failures (once the end) do not park it.
    retrying = wait_until(
        lambda: WebhookEvent.objects.filter(stripe_id="evt_parked", attempts__gte=7).first(),
        message="seven failed attempts",
    )
    assert retrying.state == WebhookEventState.RECEIVED
    assert retrying.retry_at is not None
    # Three days pass (Stripe's own retry horizon): the next failure parks it.
    WebhookEvent.objects.filter(pk=retrying.pk).update(received_at=timezone.now() - timedelta(days=3, minutes=1))
    parked = wait_until(
        lambda: WebhookEvent.objects.filter(stripe_id="evt_parked", state=WebhookEventState.FAILED).first(),
        message="the event to be parked",
    )
    assert "Traceback" in parked.traceback
    assert "Temporarily refused" in parked.last_error
    webhooks.control("DELETE", "faults")

    from io import StringIO

    out = StringIO()
    call_command("stripe_events", "--failed", "--replay", stdout=out)

    assert "Replayed 1 event(s); 0 failed again." in out.getvalue()
    assert WebhookEvent.objects.get(stripe_id="evt_parked").state == WebhookEventState.PROCESSED


def test_parallel_deliveries_of_one_event_are_processed_once(webhooks, live_server):
    import threading

    _, _, record = _mirrored_product(webhooks)
    obj = {**_client(webhooks).v1.products.retrieve(record.stripe_id).to_dict(), "name": "Delivered eight times"}
    obj["updated"] += 30
    barrier = threading.Barrier(8)
    statuses = []

    def deliver():
        barrier.wait()
        statuses.append(_deliver(live_server, event("product.updated", obj, event_id="evt_parallel")))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _all_quiet(webhooks)

    stored = WebhookEvent.objects.get(stripe_id="evt_parallel")
    assert statuses == [200] * 8
    assert (stored.deliveries, stored.attempts, stored.state) == (8, 1, WebhookEventState.PROCESSED)
    assert Product.objects.filter(name="Delivered eight times").count() == 1
