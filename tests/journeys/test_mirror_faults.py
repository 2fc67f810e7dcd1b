"""The mirror under trouble: nothing lost, nothing duplicated, nothing older after newer."""

import os
import signal
import threading
import time
from datetime import timedelta

import pytest
import stripe
from django.db import transaction

from apps.catalog import services as catalog
from apps.payments.gateway.errors import StripeKeySpent, StripeUnavailable
from apps.payments.mirror import outbox, sync
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.users import services as users
from tests.payments.helpers import broker_unreachable, settled, stripe_objects_by_ref, wait_until

pytestmark = pytest.mark.integration
PASSWORD = "a-long-unusual-passphrase-42"


def _client(emulator) -> stripe.StripeClient:
    return stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url})


def _catalog_and_users(products: int, people: int) -> tuple[list, list, list]:
    made_products, made_prices, made_users = [], [], []
    for n in range(products):
        with transaction.atomic():
            product = catalog.product_create(name=f"Product {n}")
            made_prices.append(catalog.price_create(product=product, unit_amount=100 + n, currency="usd"))
        made_products.append(product)
    for n in range(people):
        made_users.append(users.user_create(email=f"person{n}@example.com", password=PASSWORD, name=f"Person {n}"))
    return made_products, made_prices, made_users


def _assert_each_exactly_once(emulator, products, prices, people) -> None:
    assert MirrorRecord.objects.filter(state=MirrorState.SYNCED).count() == len(products) + len(prices) + len(people)
    expected = {
        "products": {f"catalog.product:{p.pk}" for p in products},
        "prices": {f"catalog.price:{p.pk}" for p in prices},
        "customers": {f"users.user:{u.pk}" for u in people},
    }
    for resource, refs in expected.items():
        found = stripe_objects_by_ref(emulator, resource)
        assert set(found) == refs, resource
        assert all(len(ids) == 1 for ids in found.values()), f"duplicates among {resource}: {found}"


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 429, "ratio": 0.33},
        {"status": 500, "ratio": 0.33},
        # The answer is lost after Stripe made the object: the retry must get it back, not make another.
        {"status": 500, "ratio": 0.33, "phase": "after"},
        {"latency_ms": 250, "ratio": 0.5},
    ],
    ids=["429-third", "500-third", "lost-answers-third", "latency"],
)
def test_everything_arrives_exactly_once_despite_stripe_trouble(mirror, fault):
    if "status" in fault:
        # At least once, whatever the dice say: the first customer's creation meets it.
        once = {key: value for key, value in fault.items() if key != "ratio"}
        mirror.add_fault(path_prefix="/v1/customers", method="POST", count=1, **once)
    mirror.add_fault(path_prefix="/v1/", **fault)

    products, prices, people = _catalog_and_users(products=6, people=4)

    wait_until(settled, timeout=90, message="every object mirrored")
    mirror.control("DELETE", "faults")  # so the checks below read Stripe's side undisturbed
    _assert_each_exactly_once(mirror, products, prices, people)
    if "status" not in fault:
        return  # slow answers fail nothing: arriving exactly once, checked above, is the whole claim
    failed_posts = [r for r in mirror.requests_seen(method="POST") if r["status"] != 200]
    assert failed_posts, "the fault never struck"
    succeeded_keys = {r["idempotency_key"] for r in mirror.requests_seen(method="POST") if r["status"] == 200}
    # Every failed write was retried with its own key until it went through.
    assert {r["idempotency_key"] for r in failed_posts} <= succeeded_keys


def test_a_worker_killed_during_a_stripe_call_leaves_no_duplicate(mirror, mirror_worker):
    mirror.add_fault(latency_ms=2500, count=1, path_prefix="/v1/products", method="POST")
    with transaction.atomic():
        product = catalog.product_create(name="Kettle")
        price = catalog.price_create(product=product, unit_amount=3000, currency="eur")
    record = wait_until(
        lambda: (
            MirrorRecord.objects.filter(kind=MirrorKind.PRODUCT, object_id=product.pk).exclude(lease_owner="").first()
        ),
        message="the task to start its Stripe call",
    )
    time.sleep(0.5)  # the create is now in flight in the emulator

    for pid in mirror_worker.payments.child_pids():
        os.kill(pid, signal.SIGKILL)

    wait_until(settled, timeout=60, message="the redelivered task")
    _assert_each_exactly_once(mirror, [product], [price], [])
    creates = [
        r for r in mirror.requests_seen(method="POST", path_prefix="/v1/products") if r["endpoint"] == "/v1/products"
    ]
    assert len({r["idempotency_key"] for r in creates}) == 1, creates
    assert record.lease_owner.startswith("task:")


@pytest.mark.parametrize(
    ("phase", "edited"),
    [("before", True), ("answer", False), ("answer", True)],
    ids=["killed-before-stripe-made-it-then-edited", "killed-after-stripe-made-it", "killed-after-then-edited"],
)
def test_a_worker_killed_during_a_first_create_leaves_one_object_whatever_is_edited_before_the_retry(
    mirror, mirror_worker, phase, edited
):
    """The retry's create carries the same key whatever changed: Stripe answers the object it made, or refuses
    the changed request, and the next attempt finds the object by its `app_ref` and adopts it."""
    mirror.add_fault(
        latency_ms=2500, count=1, path_prefix="/v1/products", method="POST", **({"phase": phase} if phase else {})
    )
    with transaction.atomic():
        product = catalog.product_create(name="Kettle")
        price = catalog.price_create(product=product, unit_amount=3000, currency="eur")
    wait_until(
        lambda: (
            MirrorRecord.objects.filter(kind=MirrorKind.PRODUCT, object_id=product.pk).exclude(lease_owner="").exists()
        ),
        message="the task to start its Stripe call",
    )
    time.sleep(0.5)  # the create is now in flight in the emulator (before or after it made the product)

    for pid in mirror_worker.payments.child_pids():
        os.kill(pid, signal.SIGKILL)
    if edited:
        catalog.product_update(product=product, data={"name": "Kettle, blue"})

    wait_until(settled, timeout=90, message="the redelivered task")
    _assert_each_exactly_once(mirror, [product], [price], [])
    (stripe_id,) = stripe_objects_by_ref(mirror, "products")[f"catalog.product:{product.pk}"]
    assert _client(mirror).v1.products.retrieve(stripe_id).name == ("Kettle, blue" if edited else "Kettle")


def test_a_product_saved_while_the_broker_is_down_is_mirrored_once_it_is_back(mirror):
    with broker_unreachable(), transaction.atomic():
        product = catalog.product_create(name="Saved during an outage")
        price = catalog.price_create(product=product, unit_amount=700, currency="usd")
    time.sleep(1)
    assert MirrorRecord.objects.filter(state=MirrorState.PENDING).count() == 2
    assert stripe_objects_by_ref(mirror, "products") == {}

    # What beat's mirror_requeue_stale_task does once rows have waited long enough.
    queued = outbox.requeue_stale(older_than=timedelta(0))

    assert queued == 2
    wait_until(settled, message="the requeued rows")
    _assert_each_exactly_once(mirror, [product], [price], [])


def test_stripe_refusing_an_object_fails_that_row_with_the_reason_and_the_rest_goes_on(mirror):
    mirror.add_fault(
        status=400,
        body_contains="currency]=huf",
        message="Currency huf is not enabled on this account.",
        param="currency",
    )

    with transaction.atomic():
        refused = catalog.product_create(name="Forint")
        refused_price = catalog.price_create(product=refused, unit_amount=100000, currency="huf")
    accepted, _, _ = _catalog_and_users(products=2, people=0)

    wait_until(settled, message="every row synced or failed")
    product_row = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=refused.pk)
    price_row = MirrorRecord.objects.get(kind=MirrorKind.PRICE, object_id=refused_price.pk)
    assert product_row.state == MirrorState.FAILED
    assert "Currency huf is not enabled on this account." in product_row.last_error
    assert price_row.state == MirrorState.FAILED
    assert "its product could not be mirrored" in price_row.last_error
    assert set(stripe_objects_by_ref(mirror, "products")) == {f"catalog.product:{p.pk}" for p in accepted}
    refusals = [r for r in mirror.requests_seen(method="POST") if r["status"] == 400]
    assert len(refusals) == 1  # a permanent error is not retried


def test_ten_quick_edits_end_as_a_few_updates_carrying_the_last(mirror):
    product, _ = _catalog_and_users(products=1, people=0)[0][0], None
    wait_until(settled)
    mirror.control("DELETE", "requests")

    for n in range(10):
        catalog.product_update(product=product, data={"name": f"Edit {n}"})

    wait_until(settled, message="the edits")
    updates = [r for r in mirror.requests_seen(method="POST") if r["endpoint"] == "/v1/products/{id}"]
    stripe_product = _client(mirror).v1.products.retrieve(MirrorRecord.objects.get(kind=MirrorKind.PRODUCT).stripe_id)
    assert stripe_product.name == "Edit 9"
    assert 1 <= len(updates) <= 3


def test_a_newer_state_is_never_followed_by_an_older_one(mirror):
    """Version 2 arrives while version 1 is still on its way to Stripe (slowed down here)."""
    product, _ = _catalog_and_users(products=1, people=0)[0][0], None
    wait_until(settled)
    mirror.add_fault(latency_ms=1500, count=1, path_prefix="/v1/products/", method="POST")

    catalog.product_update(product=product, data={"name": "Version 2"})
    wait_until(
        lambda: MirrorRecord.objects.filter(kind=MirrorKind.PRODUCT).exclude(lease_owner="").exists(),
        message="version 2's push to start",
    )
    time.sleep(0.3)  # version 2's push is in flight, slowly
    catalog.product_update(product=product, data={"name": "Version 3"})

    wait_until(settled, message="both versions")
    record = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT)
    names = [e.data.object.name for e in _client(mirror).v1.events.list(params={"type": "product.updated"}).data][::-1]
    assert names == ["Version 2", "Version 3"]
    assert record.synced_version == record.version


@pytest.mark.django_db(transaction=True)
def test_tasks_run_out_of_order_leave_stripe_with_the_newest(mirror_on):
    """Two tasks for one product, the later one first, run inline: Stripe ends with the newest version."""
    with broker_unreachable():  # only this test runs the tasks, in the order it chooses
        with transaction.atomic():
            product = catalog.product_create(name="Version 1")
            catalog.price_create(product=product, unit_amount=100, currency="usd")
        catalog.product_update(product=product, data={"name": "Version 2"})
    record = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT)
    price_record = MirrorRecord.objects.get(kind=MirrorKind.PRICE)

    second = sync.mirror_sync(record_id=record.pk, owner="task:version-2")
    first = sync.mirror_sync(record_id=record.pk, owner="task:version-1")
    sync.mirror_sync(record_id=price_record.pk)

    record.refresh_from_db()
    assert (second, first) == ("synced", "nothing to do")
    assert _client(mirror_on).v1.products.retrieve(record.stripe_id).name == "Version 2"
    assert record.synced_version == 2


@pytest.mark.django_db(transaction=True)
def test_an_object_stripe_made_under_a_lost_answer_is_adopted_after_an_edit_not_made_again(mirror_on, settings):
    """Stripe made the product, but its answer was lost (a web request's single try), and the product was renamed
    before the next attempt: that attempt asks for another product than the first, and must find the first."""
    settings.STRIPE_MAX_RETRIES = 0  # the lost answer reaches the pusher, as in a web request
    mirror_on.add_fault(status=500, phase="after", count=1, path_prefix="/v1/products", method="POST")
    with broker_unreachable():  # only this test runs the tasks
        with transaction.atomic():
            product = catalog.product_create(name="Version 1")
            price = catalog.price_create(product=product, unit_amount=100, currency="usd")
        record = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT)
        with pytest.raises(StripeUnavailable):
            sync.mirror_sync(record_id=record.pk)
        catalog.product_update(product=product, data={"name": "Version 2"})
        outcomes = []
        for _ in range(3):  # the worker's retries
            try:
                outcomes.append(sync.mirror_sync(record_id=record.pk))
                break
            except (StripeUnavailable, StripeKeySpent) as error:
                outcomes.append(type(error).__name__)
        sync.mirror_sync(record_id=MirrorRecord.objects.get(kind=MirrorKind.PRICE).pk)

    mirror_on.control("DELETE", "faults")
    _assert_each_exactly_once(mirror_on, [product], [price], [])
    assert outcomes == ["StripeKeySpent", "synced"]  # Stripe refused the changed request under the first key
    record.refresh_from_db()
    assert _client(mirror_on).v1.products.retrieve(record.stripe_id).name == "Version 2"


@pytest.mark.django_db(transaction=True)
def test_the_same_task_twice_at_once_makes_one_stripe_object(mirror_on):
    mirror_on.add_fault(latency_ms=800, count=1, path_prefix="/v1/customers", method="POST")
    with broker_unreachable():  # only this test runs the tasks
        user = users.user_create(email="twice@example.com", password=PASSWORD)
    record = MirrorRecord.objects.get(kind=MirrorKind.USER)
    outcomes = []

    def run(owner):
        outcomes.append(sync.mirror_sync(record_id=record.pk, owner=owner))

    threads = [threading.Thread(target=run, args=(f"task:twin-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["nothing to do", "synced"]
    assert list(stripe_objects_by_ref(mirror_on, "customers")) == [f"users.user:{user.pk}"]
