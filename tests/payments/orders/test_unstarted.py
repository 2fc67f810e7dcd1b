"""Orders whose payment was never started here (apps/payments/orders/unstarted.py): a checkout or an intent that
Stripe did not answer leaves its order pending for the client's retry; one no retry came for is closed by the
worker, after asking Stripe what it made for the order (expired or canceled there, or applied if it was paid).

Here the worker's decisions, with Stripe played by an in-memory stand-in: which orders it looks at, what it
asks and closes in Stripe, what a paid session or intent does instead, what a late retry or an unreachable
Stripe leaves. The whole path over HTTP (a checkout that Stripe answers late, then the worker) is covered in
tests/journeys/test_checkout.py (`TestUnansweredCheckout`).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.payments.mirror.models import MirrorKind
from apps.payments.orders.models import Order, OrderStatus
from apps.payments.orders.unstarted import CAUSE, unstarted_orders_close
from tests.payments.factories import MirrorRecordFactory, OrderFactory
from tests.payments.stripe_stand_in import unreachable

pytestmark = pytest.mark.django_db

OURS = "testsuite"  # STRIPE_APP_NAMESPACE of the test settings


@pytest.fixture(autouse=True)
def reuse_window(settings):
    settings.CHECKOUT_REUSE_SECONDS = 300


def _unstarted(minutes_ago: float = 10, **fields) -> Order:
    """A pending order with neither session nor intent, made `minutes_ago`, by a user Stripe holds as a customer."""
    order = OrderFactory(**fields)
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    if order.user_id:
        MirrorRecordFactory(kind=MirrorKind.USER, object_id=order.user_id, stripe_id=f"cus_{order.user_id}")
    order.refresh_from_db()
    return order


def _made_for(order: Order, obj_id: str, status: str, namespace: str = OURS, **fields) -> dict:
    """A session or intent Stripe made for `order` (its metadata names the order), a moment after it."""
    return {
        "id": obj_id,
        "status": status,
        "created": int(order.created_at.timestamp()) + 1,
        "metadata": {"order": str(order.pk), "app_namespace": namespace},
        **fields,
    }


def _nothing_in_stripe(stand_in) -> None:
    stand_in.always("checkout.sessions.list", []).always("payment_intents.list", [])


def test_an_order_still_inside_the_window_for_a_retry_is_left_pending(stripe_stand_in):
    _nothing_in_stripe(stripe_stand_in)
    order = _unstarted(minutes_ago=5)  # 300 s of reuse and 30 s of grace have not passed

    assert unstarted_orders_close() == 0
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING
    assert stripe_stand_in.calls == []


def test_an_order_nothing_was_made_for_in_stripe_is_canceled(stripe_stand_in):
    _nothing_in_stripe(stripe_stand_in)
    order = _unstarted()

    assert unstarted_orders_close() == 1

    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELED
    assert order.transitions.get().cause == CAUSE
    customer = f"cus_{order.user_id}"
    assert stripe_stand_in.calls_to("checkout.sessions.list")[0].params == {"customer": customer}
    assert stripe_stand_in.calls_to("payment_intents.list")[0].params == {"customer": customer}


def test_the_customer_the_order_was_started_for_is_asked_before_the_users_mirror(stripe_stand_in):
    _nothing_in_stripe(stripe_stand_in)
    _unstarted(stripe_customer_id="cus_kept_on_the_order")

    unstarted_orders_close()

    assert stripe_stand_in.calls_to("checkout.sessions.list")[0].params == {"customer": "cus_kept_on_the_order"}


def test_a_guest_order_with_no_stripe_customer_is_canceled_without_asking_stripe(stripe_stand_in):
    order = _unstarted(user=None, email="guest@example.com")

    assert unstarted_orders_close() == 1
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELED
    assert stripe_stand_in.calls == []


@pytest.mark.parametrize(
    "started",
    [
        {"checkout_session_id": "cs_1"},
        {"payment_intent_id": "pi_1"},
        {"status": OrderStatus.FAILED},
        {"status": OrderStatus.PAID},
    ],
    ids=["has-a-session", "has-an-intent", "failed", "paid"],
)
def test_orders_whose_payment_was_started_are_not_touched(stripe_stand_in, started):
    order = _unstarted(**started)

    assert unstarted_orders_close() == 0
    assert Order.objects.get(pk=order.pk).status == order.status
    assert stripe_stand_in.calls == []


def test_objects_made_before_the_order_are_not_read_further(stripe_stand_in):
    """Stripe lists newest first: the first one older than the order ends the search."""
    order = _unstarted()
    older = {"id": "cs_old", "status": "open", "created": int(order.created_at.timestamp()) - 3600, "metadata": {}}
    stripe_stand_in.always("checkout.sessions.list", [older]).always("payment_intents.list", [])

    assert unstarted_orders_close() == 1
    assert stripe_stand_in.calls_to("checkout.sessions.expire") == []


def test_one_order_stripe_cannot_be_asked_about_does_not_stop_the_others(stripe_stand_in):
    first, second = _unstarted(minutes_ago=20), _unstarted(minutes_ago=10)
    stripe_stand_in.always(
        "checkout.sessions.list",
        lambda call: unreachable() if call.params["customer"] == f"cus_{first.user_id}" else [],
    ).always("payment_intents.list", [])

    assert unstarted_orders_close() == 1

    assert Order.objects.get(pk=first.pk).status == OrderStatus.PENDING  # the next run asks again
    assert Order.objects.get(pk=second.pk).status == OrderStatus.CANCELED


def test_a_retry_that_started_the_order_meanwhile_keeps_it(stripe_stand_in):
    order = _unstarted()

    def retry_lands_while_stripe_is_asked(call):
        Order.objects.filter(pk=order.pk).update(checkout_session_id="cs_made_by_the_retry")
        return []

    stripe_stand_in.always("checkout.sessions.list", retry_lands_while_stripe_is_asked)
    stripe_stand_in.always("payment_intents.list", [])

    assert unstarted_orders_close() == 0
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING


def test_at_most_limit_orders_are_looked_at_oldest_first(stripe_stand_in):
    _nothing_in_stripe(stripe_stand_in)
    oldest, newer = _unstarted(minutes_ago=30), _unstarted(minutes_ago=20)

    assert unstarted_orders_close(limit=1) == 1

    assert Order.objects.get(pk=oldest.pk).status == OrderStatus.CANCELED
    assert Order.objects.get(pk=newer.pk).status == OrderStatus.PENDING


class TestWhatStripeMadeForTheOrder:
    def test_an_open_session_made_for_it_is_expired_in_stripe_and_the_order_canceled(self, stripe_stand_in):
        order = _unstarted()
        stripe_stand_in.always("checkout.sessions.list", [_made_for(order, "cs_1", "open")])
        stripe_stand_in.always("payment_intents.list", [])
        stripe_stand_in.answer("checkout.sessions.expire", {"id": "cs_1", "status": "expired"})

        assert unstarted_orders_close() == 1

        assert [call.args for call in stripe_stand_in.calls_to("checkout.sessions.expire")] == [("cs_1",)]
        # The order keeps the session's id: no session in Stripe is one no order knows.
        closed = Order.objects.get(pk=order.pk)
        assert (closed.status, closed.checkout_session_id) == (OrderStatus.CANCELED, "cs_1")

    def test_a_payable_intent_made_for_it_is_canceled_in_stripe_and_the_order_canceled(self, stripe_stand_in):
        order = _unstarted()
        stripe_stand_in.always("checkout.sessions.list", [])
        stripe_stand_in.always("payment_intents.list", [_made_for(order, "pi_1", "requires_payment_method")])
        stripe_stand_in.answer("payment_intents.cancel", {"id": "pi_1", "status": "canceled"})

        assert unstarted_orders_close() == 1

        assert [call.args for call in stripe_stand_in.calls_to("payment_intents.cancel")] == [("pi_1",)]
        closed = Order.objects.get(pk=order.pk)
        assert (closed.status, closed.payment_intent_id) == (OrderStatus.CANCELED, "pi_1")

    def test_a_session_paid_before_the_worker_came_pays_the_order(self, stripe_stand_in):
        order = _unstarted(amount_total=5000, currency="eur")
        paid = _made_for(
            order,
            "cs_1",
            "complete",
            payment_status="paid",
            amount_total=5000,
            currency="eur",
            payment_intent="pi_1",
            customer_details={"email": order.email},
        )
        stripe_stand_in.always("checkout.sessions.list", [paid])

        assert unstarted_orders_close() == 0  # paid, not closed

        order.refresh_from_db()
        assert (order.status, order.checkout_session_id, order.payment_intent_id) == (OrderStatus.PAID, "cs_1", "pi_1")
        assert stripe_stand_in.calls_to("payment_intents.list") == []

    @pytest.mark.parametrize(
        ("intent_status", "then"), [("succeeded", OrderStatus.PAID), ("processing", OrderStatus.PENDING)]
    )
    def test_an_intent_paid_or_paying_before_the_worker_came_is_applied_not_canceled(
        self, stripe_stand_in, intent_status, then
    ):
        order = _unstarted(amount_total=5000, currency="eur")
        intent = _made_for(
            order, "pi_1", intent_status, amount=5000, amount_received=5000, currency="eur", last_payment_error=None
        )
        stripe_stand_in.always("checkout.sessions.list", []).always("payment_intents.list", [intent])

        assert unstarted_orders_close() == 0

        order.refresh_from_db()
        assert (order.status, order.payment_intent_id) == (then, "pi_1")
        assert stripe_stand_in.calls_to("payment_intents.cancel") == []

    def test_a_paid_session_that_took_another_amount_reaches_an_operator(self, stripe_stand_in):
        order = _unstarted(amount_total=5000, currency="eur")
        short = _made_for(
            order, "cs_1", "complete", payment_status="paid", amount_total=4000, currency="eur", payment_intent="pi_1"
        )
        stripe_stand_in.always("checkout.sessions.list", [short])

        unstarted_orders_close()

        assert Order.objects.get(pk=order.pk).status == OrderStatus.REVIEW

    @pytest.mark.parametrize(
        "metadata",
        [{"order": "999999", "app_namespace": OURS}, {"app_namespace": "another-installation"}],
        ids=["another-order", "another-installation"],
    )
    def test_what_stripe_holds_for_another_order_or_installation_is_left_alone(self, stripe_stand_in, metadata):
        order = _unstarted()
        theirs = {**_made_for(order, "cs_theirs", "open"), "metadata": {"order": str(order.pk), **metadata}}
        stripe_stand_in.always("checkout.sessions.list", [theirs]).always("payment_intents.list", [])

        assert unstarted_orders_close() == 1

        assert stripe_stand_in.calls_to("checkout.sessions.expire") == []
        assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELED
