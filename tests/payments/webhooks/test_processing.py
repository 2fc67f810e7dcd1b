"""Processing stored events (apps/payments/webhooks/processing.py): the next ready event is taken (none another
drain holds, none before its retry time), its handler run once, and what came of it noted on the event; an
event of the other live/test mode is refused, a type without a handler ignored, a failing handler's work
rolled back and the event retried.

Here `process_next` and `process_event` called directly, with handlers of the test's own put in the one table
for a type nobody else uses. The backoff and the three-day horizon (`note_failure`, `retry_delay`) are in
tests/payments/webhooks/test_retries.py, the drains that call `process_next` in
tests/payments/webhooks/test_drain.py; events delivered by the emulator and processed by real workers in
tests/journeys/test_webhook_processing.py.
"""

import threading
import time
from datetime import timedelta

import pytest
import stripe
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from djstripe import models as djstripe_models

from apps.catalog.models import Product
from apps.payments.gateway import reads
from apps.payments.gateway.client import gateway
from apps.payments.mirror import djstripe_copies
from apps.payments.mirror.models import MirrorKind, MirrorState, StripeWatermark
from apps.payments.mirror.outcomes import CatalogOutcome
from apps.payments.orders.errors import EventNotReady
from apps.payments.orders.models import Order, OrderStatus
from apps.payments.webhooks import processing
from apps.payments.webhooks.ingest import webhook_receive
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from apps.payments.webhooks.outcomes import EventOutcome
from apps.payments.webhooks.processing import process_event, process_next
from config.outcomes import OutcomeKind
from tests.catalog.factories import ProductFactory
from tests.payments.factories import MirrorRecordFactory, OrderFactory

UPDATED = 1_767_268_800
TYPE = "test_helpers.shop_event"  # a type Stripe never sends, so only this test's handler answers it


class ShopOutcome(OutcomeKind):
    DONE = "done with {event}"


class Handler:
    """A handler that records the events it was given; `fails` makes it raise after `work` ran."""

    def __init__(self, work=None, fails: Exception | None = None):
        self.seen: list[str] = []
        self.work, self.fails = work, fails

    def __call__(self, event: dict):
        self.seen.append(event["id"])
        if self.work is not None:
            self.work(event)
        if self.fails is not None:
            raise self.fails
        return ShopOutcome.DONE.of(event=event["id"])


@pytest.fixture
def handler(monkeypatch) -> Handler:
    handler = Handler()
    monkeypatch.setitem(processing.HANDLERS, TYPE, handler)
    return handler


def _payload(event_id: str, event_type: str = TYPE, *, livemode: bool = False) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": 1_767_268_800,
        "livemode": livemode,
        "data": {"object": {"id": "obj_1", "object": "thing"}},
    }


def _stored(event_id: str, event_type: str = TYPE, *, livemode: bool = False, **fields) -> WebhookEvent:
    """An event as the intake stores it (both copies), then brought to `fields`."""
    webhook_receive(event=_payload(event_id, event_type, livemode=livemode))
    if fields:
        WebhookEvent.objects.filter(stripe_id=event_id).update(**fields)
    return WebhookEvent.objects.get(stripe_id=event_id)


def _product_event(event_id: str) -> dict:
    return {"id": event_id, "object": "event", "type": "product.updated", "created": UPDATED, "livemode": False}


def _now(record: WebhookEvent) -> WebhookEvent:
    record.refresh_from_db()
    return record


@pytest.mark.django_db
class TestProcessNext:
    def test_nothing_ready_is_none(self, handler):
        assert process_next() is None

    def test_the_oldest_ready_event_is_run_once_and_its_outcome_noted(self, handler):
        first, second = _stored("evt_1"), _stored("evt_2")

        taken = process_next()

        assert taken == (first.pk, ShopOutcome.DONE.of(event="evt_1"))
        first = _now(first)
        assert (first.state, first.attempts, first.outcome) == (WebhookEventState.PROCESSED, 1, "done with evt_1")
        assert first.processed_at is not None
        assert _now(second).state == WebhookEventState.RECEIVED
        assert handler.seen == ["evt_1"]

    def test_a_processed_event_is_not_taken_again(self, handler):
        _stored("evt_1")
        process_next()

        assert process_next() is None
        assert handler.seen == ["evt_1"]

    def test_an_event_waiting_for_its_retry_time_is_passed_over_until_then(self, handler):
        later = _stored("evt_later", retry_at=timezone.now() + timedelta(minutes=5))
        due = _stored("evt_due", retry_at=timezone.now() - timedelta(seconds=1))

        assert process_next()[0] == due.pk
        assert process_next() is None
        assert _now(later).state == WebhookEventState.RECEIVED

    @pytest.mark.parametrize("state", [WebhookEventState.FAILED, WebhookEventState.IGNORED, WebhookEventState.REFUSED])
    def test_an_event_parked_ignored_or_refused_is_not_taken(self, handler, state):
        _stored("evt_1", state=state)

        assert process_next() is None
        assert handler.seen == []

    def test_a_type_without_a_handler_is_ignored(self, handler):
        record = _stored("evt_1", "balance.available")

        assert process_next() == (record.pk, EventOutcome.NOT_HANDLED.of())
        record = _now(record)
        assert (record.state, record.outcome, record.attempts) == (
            WebhookEventState.IGNORED,
            "not a type this app handles",
            1,
        )

    def test_a_live_event_reaching_a_test_installation_is_refused_and_not_run(self, handler):
        record = _stored("evt_live", livemode=True)

        _, outcome = process_next()

        assert outcome == EventOutcome.OTHER_MODE.of(theirs="live", ours="test")
        record = _now(record)
        assert (record.state, record.outcome) == (
            WebhookEventState.REFUSED,
            "refused: a live-mode event, but this installation uses a test-mode key",
        )
        assert handler.seen == []

    def test_a_test_event_reaching_a_live_installation_is_refused_and_not_run(self, handler, settings):
        settings.STRIPE_LIVE_MODE = True
        record = _stored("evt_test", livemode=False)

        process_next()

        assert _now(record).state == WebhookEventState.REFUSED
        assert handler.seen == []

    def test_a_failing_handler_leaves_nothing_of_its_work_and_the_event_is_retried(self, monkeypatch, settings):
        settings.WEBHOOK_RETRY_BASE_SECONDS = 2.0
        order = OrderFactory()
        half_way = Handler(
            work=lambda event: Order.objects.filter(pk=order.pk).update(status=OrderStatus.PAID),
            fails=RuntimeError("the handler broke half-way"),
        )
        monkeypatch.setitem(processing.HANDLERS, TYPE, half_way)
        record = _stored("evt_1")

        assert process_next() == (record.pk, EventOutcome.RETRIED.of(delay=2.0))

        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING
        record = _now(record)
        assert (record.state, record.attempts) == (WebhookEventState.RECEIVED, 1)
        assert record.last_error == "RuntimeError: the handler broke half-way"
        assert "Traceback" in record.traceback
        assert record.retry_at > timezone.now()

    def test_an_event_that_must_wait_is_retried_without_a_traceback(self, monkeypatch):
        monkeypatch.setitem(processing.HANDLERS, TYPE, Handler(fails=EventNotReady("its payment is not here yet")))
        record = _stored("evt_1")

        _, outcome = process_next()

        assert outcome.kind is EventOutcome.WAITS_AND_RETRIED
        assert _now(record).traceback == ""

    def test_a_failure_past_the_retry_horizon_parks_the_event(self, monkeypatch, settings):
        monkeypatch.setitem(processing.HANDLERS, TYPE, Handler(fails=RuntimeError("still broken")))
        record = _stored("evt_1")
        WebhookEvent.objects.filter(pk=record.pk).update(
            received_at=timezone.now() - timedelta(seconds=settings.WEBHOOK_RETRY_HORIZON_SECONDS + 1)
        )

        assert process_next() == (record.pk, EventOutcome.PARKED.of())
        record = _now(record)
        assert (record.state, record.retry_at) == (WebhookEventState.FAILED, None)

    def test_a_retry_that_succeeds_clears_the_earlier_failure(self, handler):
        record = _stored(
            "evt_1",
            attempts=3,
            last_error="RuntimeError: earlier",
            traceback="Traceback ...",
            retry_at=timezone.now() - timedelta(seconds=1),
        )

        process_next()

        record = _now(record)
        assert (record.state, record.attempts, record.last_error, record.traceback, record.retry_at) == (
            WebhookEventState.PROCESSED,
            4,
            "",
            "",
            None,
        )


@pytest.mark.django_db
class TestPickingTheNextEvent:
    def test_the_next_event_is_found_through_the_waiting_ones_only(self):
        """However many settled events the table holds, the pick reads the few waiting ones: PostgreSQL's
        plan, with fresh statistics, goes through the partial index of waiting events."""
        WebhookEvent.objects.bulk_create(
            WebhookEvent(stripe_id=f"evt_settled{n}", type="product.updated", state=WebhookEventState.PROCESSED)
            for n in range(3000)
        )
        WebhookEvent.objects.bulk_create(
            WebhookEvent(stripe_id=f"evt_waiting{n}", type="product.updated") for n in range(3)
        )
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {WebhookEvent._meta.db_table}")

        plan = processing.next_ready(timezone.now())[:1].explain()

        assert "payments_webhook_waiting_idx" in plan, plan
        assert processing.next_ready(timezone.now()).first().stripe_id == "evt_waiting0"


@pytest.mark.django_db
class TestProcessEvent:
    def test_an_event_is_run_whatever_its_retry_time(self, handler):
        record = _stored("evt_1", retry_at=timezone.now() + timedelta(hours=1))

        assert process_event(webhook_event_id=record.pk) == ShopOutcome.DONE.of(event="evt_1")
        assert _now(record).state == WebhookEventState.PROCESSED

    @pytest.mark.parametrize("state", [WebhookEventState.PROCESSED, WebhookEventState.IGNORED])
    def test_an_event_done_already_is_not_run_again(self, handler, state):
        record = _stored("evt_1", state=state, attempts=1, outcome="done before")

        assert process_event(webhook_event_id=record.pk) == EventOutcome.ALREADY_DONE.of()
        assert handler.seen == []
        assert (_now(record).attempts, _now(record).outcome) == (1, "done before")

    def test_an_event_that_is_not_stored_is_already_done(self, handler):
        assert process_event(webhook_event_id=999_999) == EventOutcome.ALREADY_DONE.of()

    def test_a_parked_event_is_run_again(self, handler):
        record = _stored("evt_1", state=WebhookEventState.FAILED, attempts=70, last_error="RuntimeError: old")

        process_event(webhook_event_id=record.pk)

        record = _now(record)
        assert (record.state, record.attempts, record.last_error) == (WebhookEventState.PROCESSED, 71, "")
        assert handler.seen == ["evt_1"]

    def test_a_failing_handler_raises_and_nothing_is_noted(self, monkeypatch):
        order = OrderFactory()
        monkeypatch.setitem(
            processing.HANDLERS,
            TYPE,
            Handler(
                work=lambda event: Order.objects.filter(pk=order.pk).update(status=OrderStatus.PAID),
                fails=RuntimeError("broken"),
            ),
        )
        record = _stored("evt_1")

        with pytest.raises(RuntimeError, match="broken"):
            process_event(webhook_event_id=record.pk)

        record = _now(record)
        assert (record.state, record.attempts, record.last_error) == (WebhookEventState.RECEIVED, 0, "")
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING


class _AnsweredAtOnce:
    """For a read the race below does not turn on: Stripe's answer, at once."""

    def request(self, method, url, headers, post_data=None):
        return "{}", 200, {}


_NO_READ_LEFT = reads.ReadFirst(_AnsweredAtOnce(), "get", "/v1/products/prod_1", {})


class OtherDrain(threading.Thread):
    """Another drain holding `event` (claimed in its batch's transaction) until told to let go."""

    def __init__(self, event: WebhookEvent):
        super().__init__()
        self.event, self.errors = event, []
        self.holding, self.done = threading.Event(), threading.Event()

    def run(self) -> None:
        try:
            with transaction.atomic():
                assert [record.pk for record in processing.claim(timezone.now(), only=[self.event.pk])] == [
                    self.event.pk
                ]
                self.holding.set()
                self.done.wait(timeout=10)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.errors.append(error)
            self.holding.set()
        finally:
            connection.close()

    def __enter__(self) -> "OtherDrain":
        self.start()
        assert self.holding.wait(timeout=10)
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.join(timeout=10)
        assert self.errors == []


@pytest.mark.django_db(transaction=True)
def test_an_event_another_drain_holds_is_left_to_it_and_the_next_one_taken(handler, queued_tasks):
    held, nxt = _stored("evt_held"), _stored("evt_next")

    with OtherDrain(held):
        taken = process_next()
        then = process_next()

    assert (taken[0], then) == (nxt.pk, None)
    assert _now(held).state == WebhookEventState.RECEIVED


@pytest.mark.django_db(transaction=True)
def test_a_redelivery_is_acknowledged_while_a_drain_holds_its_event(handler, queued_tasks):
    """A drain holds its batch for as long as the batch takes; Stripe's retry of one of its events is counted
    and answered at once, not after the batch."""
    held = _stored("evt_held")

    with OtherDrain(held):
        started = time.monotonic()
        new = webhook_receive(event={**_payload("evt_held")})
        took = time.monotonic() - started
        deliveries = _now(held).deliveries

    assert (new, deliveries) == (False, 2)
    assert took < 1


@pytest.mark.django_db
class TestTheCostOfAnEvent:
    """Round trips to PostgreSQL counted, not timed: these counts hold on any machine. The test's transaction
    stands for none (its BEGIN and COMMIT would be the batch's, counted as savepoints here)."""

    EVENTS = 20

    @pytest.fixture(autouse=True)
    def _mirror_on(self, settings):
        settings.STRIPE_MIRROR_ENABLED = True

    def _mirrored_products(self, count: int) -> list[dict]:
        """Products as the mirror leaves them: each with its Stripe product, its watermark and dj-stripe's copy."""
        products = []
        for n in range(count):
            product = ProductFactory(name=f"Teapot {n}", description="", metadata={})
            MirrorRecordFactory(
                kind=MirrorKind.PRODUCT,
                object_id=product.pk,
                stripe_id=f"prod_{n}",
                state=MirrorState.SYNCED,
                synced_version=1,
            )
            StripeWatermark.objects.create(stripe_id=f"prod_{n}", updated=UPDATED)
            stripe_product = {
                "id": f"prod_{n}",
                "object": "product",
                "name": product.name,
                "description": None,
                "active": True,
                "updated": UPDATED,
                "created": UPDATED - 3600,
                "livemode": False,
                "metadata": {},
            }
            djstripe_copies.store(djstripe_models.Product, stripe_product)
            products.append(stripe_product)
        return products

    def test_a_dashboard_edit_of_a_mirrored_product_takes_at_most_six_round_trips(self):
        products = self._mirrored_products(self.EVENTS)
        for n, product in enumerate(products):
            edited = {**product, "name": f"{product['name']} in blue", "updated": UPDATED + 10}
            webhook_receive(event={**_product_event(f"evt_{n}"), "data": {"object": edited}})

        with CaptureQueriesContext(connection) as statements:
            done = processing.process_batch()

        assert [str(outcome) for _, outcome in done] == [str(CatalogOutcome.PRODUCT_UPDATED.of())] * self.EVENTS
        assert Product.objects.filter(name__endswith="in blue").count() == self.EVENTS
        per_event = len(statements) / self.EVENTS
        assert per_event <= 6, "\n".join(statement["sql"][:150] for statement in statements[:40])
        savepoints = [statement for statement in statements if statement["sql"].startswith("SAVEPOINT")]
        assert len(savepoints) == 1  # the batch's own transaction: one commit for all twenty

    def test_our_own_writes_coming_back_take_at_most_two_round_trips(self):
        """An echo: Stripe tells us what we just wrote (the same `updated` and content as the watermark)."""
        products = self._mirrored_products(self.EVENTS)
        for n, product in enumerate(products):
            webhook_receive(event={**_product_event(f"evt_{n}"), "data": {"object": product}})

        with CaptureQueriesContext(connection) as statements:
            done = processing.process_batch()

        assert [str(outcome) for _, outcome in done] == [str(CatalogOutcome.UNCHANGED.of())] * self.EVENTS
        assert len(statements) / self.EVENTS <= 2


@pytest.mark.django_db
class TestBatches:
    def test_a_batch_is_one_transaction_whose_events_are_each_processed_once(self, handler):
        for name in ("evt_a", "evt_b", "evt_c"):
            _stored(name)

        done = processing.process_batch()

        assert [outcome for _, outcome in done] == [
            ShopOutcome.DONE.of(event=name) for name in ("evt_a", "evt_b", "evt_c")
        ]
        assert handler.seen == ["evt_a", "evt_b", "evt_c"]
        assert set(WebhookEvent.objects.values_list("state", flat=True)) == {WebhookEventState.PROCESSED}

    def test_an_event_that_fails_is_retried_alone_and_the_others_are_kept_once(self, monkeypatch):
        """The batch is undone at the failure: what the events ahead of it wrote is written again once, not
        twice, and those after it are processed too."""

        def handle(event: dict):
            if event["id"] == "evt_b":
                raise EventNotReady("its payment is not here yet")
            StripeWatermark.objects.create(stripe_id=event["id"])  # a write a second run could not repeat
            return ShopOutcome.DONE.of(event=event["id"])

        monkeypatch.setitem(processing.HANDLERS, TYPE, handle)
        for name in ("evt_a", "evt_b", "evt_c"):
            _stored(name)

        done = dict(processing.process_batch())

        states = dict(WebhookEvent.objects.values_list("stripe_id", "state"))
        assert states == {
            "evt_a": WebhookEventState.PROCESSED,
            "evt_b": WebhookEventState.RECEIVED,
            "evt_c": WebhookEventState.PROCESSED,
        }
        assert sorted(StripeWatermark.objects.values_list("stripe_id", flat=True)) == ["evt_a", "evt_c"]
        assert WebhookEvent.objects.get(stripe_id="evt_b").retry_at is not None
        assert len(done) == 3


@pytest.mark.django_db(transaction=True)
class TestReadsFromStripe:
    """A handler that must read Stripe reads it with no transaction open, then runs again with the answer."""

    @pytest.fixture
    def network(self, monkeypatch) -> list[tuple[str, bool]]:
        """Every request that reached the network: its method, and whether a transaction was open then."""
        sent: list[tuple[str, bool]] = []
        send = stripe.RequestsClient.request

        def record(client, method, url, headers, post_data=None):
            sent.append((method, connection.in_atomic_block))
            return send(client, method, url, headers, post_data)

        monkeypatch.setattr(stripe.RequestsClient, "request", record)
        return sent

    def test_the_read_is_made_outside_the_events_transaction_and_once(
        self, mirror_on, stripe_client, network, monkeypatch, queued_tasks
    ):
        teapot = stripe_client.v1.products.create(params={"name": "Teapot"})
        runs: list[str] = []

        def handle(event: dict):
            runs.append(event["id"])
            if event["id"] != "evt_read":
                return ShopOutcome.DONE.of(event=event["id"])
            gw = gateway()
            return ShopOutcome.DONE.of(
                event=gw.call(lambda options: gw.v1.products.retrieve(teapot.id, options=options)).name
            )

        monkeypatch.setitem(processing.HANDLERS, TYPE, handle)
        for name in ("evt_a", "evt_read", "evt_c"):
            _stored(name)
        network.clear()

        done = processing.process_batch()

        assert [str(outcome) for _, outcome in done] == ["done with evt_a", "done with Teapot", "done with evt_c"]
        assert network == [("get", False)]
        assert set(WebhookEvent.objects.values_list("state", flat=True)) == {WebhookEventState.PROCESSED}
        # The batch stopped at the read: evt_a again with those ahead, evt_read alone after its read, evt_c after.
        assert runs == ["evt_a", "evt_read", "evt_a", "evt_read", "evt_c"]

    def test_while_a_drain_reads_for_an_event_no_other_drain_takes_it(
        self, mirror_on, stripe_client, monkeypatch, queued_tasks
    ):
        """The undone batch released it and it is the oldest waiting: another drain would read it again."""
        teapot = stripe_client.v1.products.create(params={"name": "Teapot"})
        taken_meanwhile: list[list[str]] = []

        def handle(event: dict):
            gw = gateway()
            gw.call(lambda options: gw.v1.products.retrieve(teapot.id, options=options))
            return ShopOutcome.DONE.of(event=event["id"])

        def another_drain() -> None:
            try:
                with transaction.atomic():
                    taken_meanwhile.append([record.stripe_id for record in processing.claim(timezone.now())])
            finally:
                connection.close()

        send = stripe.RequestsClient.request

        def read_while_another_drain_looks(client, method, url, headers, post_data=None):
            thread = threading.Thread(target=another_drain)
            thread.start()
            thread.join(timeout=10)
            return send(client, method, url, headers, post_data)

        monkeypatch.setitem(processing.HANDLERS, TYPE, handle)
        _stored("evt_read")
        monkeypatch.setattr(stripe.RequestsClient, "request", read_while_another_drain_looks)

        done = processing.process_batch()

        assert [str(outcome) for _, outcome in done] == ["done with evt_read"]
        assert taken_meanwhile == [[]]
        assert _now(WebhookEvent.objects.get(stripe_id="evt_read")).retry_at is None

    def test_of_two_drains_whose_batches_met_the_same_event_one_reads_it(self, handler, queued_tasks):
        """Both undid their batches at once; the first to set it aside reads it, the other leaves it."""
        record = _stored("evt_read")

        assert processing._set_aside(record.pk) is True
        assert processing._set_aside(record.pk) is False
        assert processing.claim(timezone.now()) == []  # nor does any other drain's next batch take it

    def test_a_handler_never_writes_to_stripe(self, mirror_on, network, monkeypatch, queued_tasks):
        def handle(event: dict):
            gw = gateway()
            gw.call(lambda options: gw.v1.products.create(params={"name": "Made by an event"}, options=options))
            return ShopOutcome.DONE.of(event=event["id"])

        monkeypatch.setitem(processing.HANDLERS, TYPE, handle)
        record = _stored("evt_write")
        network.clear()

        processing.process_batch()

        assert network == []
        assert "must not write to Stripe" in _now(record).last_error


@pytest.mark.django_db(transaction=True)
def test_an_event_set_aside_for_a_drain_is_taken_by_it_once_another_batch_lets_go(handler, queued_tasks):
    """Another drain's batch took the event a moment before this drain set it aside to read it; that batch
    leaves it (it lost the setting aside), and this drain waits for it to let go instead of skipping it."""
    record = _stored("evt_read")

    with OtherDrain(record) as other:
        assert processing._set_aside(record.pk) is True
        threading.Timer(0.3, other.done.set).start()
        taken = processing._process_alone(record.pk, first_read=_NO_READ_LEFT)

    assert taken == (record.pk, ShopOutcome.DONE.of(event="evt_read"))
    assert _now(record).state == WebhookEventState.PROCESSED
