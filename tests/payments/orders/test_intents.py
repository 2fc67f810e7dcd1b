"""Payment intents for apps (apps/payments/orders/intents.py): an order and its intent for a cart, made once
under the order's key for exactly the order's total; the same cart again soon getting the same intent back while
it can still be paid; an app's cancel and sync, which ask Stripe.

Here each function called directly, with Stripe played by an in-memory stand-in: what the intent is made with,
what a refusal or no answer leaves behind, and what a cancel that races the payment finds. What Stripe's events
do to an app's order (`intent_apply` through `events.on_intent`) is in tests/payments/orders/test_events.py, the
cancel and sync as `order_cancel`/`order_sync` call them in tests/payments/orders/test_sessions.py. The whole path
over HTTP, an app paying with the SDK against the emulator, is in tests/journeys/test_payment_intents.py.
"""

from datetime import timedelta

import pytest
import stripe
from django.utils import timezone

from apps.payments.gateway.errors import StripeRefused, StripeUnavailable
from apps.payments.mirror.models import MirrorKind, MirrorState
from apps.payments.orders.errors import AppPaymentsNotConfigured, CheckoutUnavailable, OrderActionRefused
from apps.payments.orders.intents import intent_cancel, intent_for_cart, intent_sync
from apps.payments.orders.lifecycle import CartLine
from apps.payments.orders.models import Order, OrderStatus, Payment, PaymentStatus
from tests.catalog.factories import PriceFactory
from tests.payments.factories import MirrorRecordFactory, OrderFactory, PaymentFactory
from tests.payments.stripe_stand_in import missing, refused, unreachable
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

PUBLISHABLE = "pk_test_standIn"


def _intent(intent_id: str, status: str = "requires_payment_method", **fields) -> dict:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "status": status,
        "amount": 5000,
        "currency": "eur",
        "client_secret": f"{intent_id}_secret_1",
        **fields,
    }


def _made(call) -> dict:
    """Stripe's answer to an intent it made: one per key, for what was asked."""
    order = call.params["metadata"]["order"]
    return _intent(f"pi_order_{order}", amount=call.params["amount"], currency=call.params["currency"])


@pytest.fixture(autouse=True)
def publishable_key(settings):
    settings.STRIPE_PUBLISHABLE_KEY = PUBLISHABLE


@pytest.fixture
def ada(db):
    user = UserFactory()
    MirrorRecordFactory(
        kind=MirrorKind.USER, object_id=user.pk, stripe_id="cus_ada", state=MirrorState.SYNCED, synced_version=1
    )
    return user


@pytest.fixture
def teapot(db):
    return PriceFactory(unit_amount=2500, currency="eur")


@pytest.fixture
def stripe_makes_intents(stripe_stand_in):
    stripe_stand_in.always("payment_intents.create", _made)
    return stripe_stand_in


def _buy(user, price, quantity: int = 2):
    return intent_for_cart(user=user, lines=[CartLine(price=price, quantity=quantity)])


class TestStartingAnIntent:
    def test_the_intent_is_for_exactly_the_orders_total_and_the_app_gets_what_it_pays_with(
        self, stripe_makes_intents, ada, teapot
    ):
        started = _buy(ada, teapot, quantity=2)

        order = started.order
        create = stripe_makes_intents.calls_to("payment_intents.create")[0]
        assert create.params == {
            "amount": 5000,
            "currency": "eur",
            "metadata": {"order": str(order.pk), "app_namespace": "testsuite"},
            "description": f"Order {order.pk}",
            "customer": "cus_ada",
        }
        assert create.idempotency_key == f"order:{order.pk}:payment-intent"
        assert (started.client_secret, started.publishable_key) == (f"pi_order_{order.pk}_secret_1", PUBLISHABLE)
        assert (order.payment_intent_id, order.stripe_customer_id, order.status) == (
            f"pi_order_{order.pk}",
            "cus_ada",
            OrderStatus.PENDING,
        )
        payment = Payment.objects.get(order=order)
        assert (started.payment, payment.amount, payment.currency, payment.status) == (
            payment,
            5000,
            "eur",
            PaymentStatus.PENDING,
        )

    def test_a_zero_decimal_currency_is_asked_in_whole_units_as_the_catalog_holds_them(self, stripe_makes_intents, ada):
        yen = PriceFactory(unit_amount=1500, currency="jpy")

        _buy(ada, yen, quantity=3)

        create = stripe_makes_intents.calls_to("payment_intents.create")[0]
        assert (create.params["amount"], create.params["currency"]) == (4500, "jpy")

    def test_without_a_publishable_key_nothing_is_made(self, stripe_stand_in, settings, ada, teapot):
        settings.STRIPE_PUBLISHABLE_KEY = ""

        with pytest.raises(AppPaymentsNotConfigured, match="STRIPE_PUBLISHABLE_KEY"):
            _buy(ada, teapot)

        assert stripe_stand_in.calls == []
        assert not ada.orders.exists()

    def test_the_client_secret_is_not_kept(self, stripe_makes_intents, ada, teapot):
        started = _buy(ada, teapot)

        stored = [
            *Payment.objects.filter(order=started.order).values(),
            *Order.objects.filter(pk=started.order.pk).values(),
        ]
        assert started.client_secret not in {str(value) for row in stored for value in row.values()}

    def test_no_answer_keeps_the_order_pending_and_the_retry_asks_again_with_the_same_key(
        self, stripe_stand_in, ada, teapot
    ):
        stripe_stand_in.answer("payment_intents.create", unreachable(), _made)

        with pytest.raises(CheckoutUnavailable, match="payment intent not started") as come_back:
            _buy(ada, teapot)
        waiting = ada.orders.get()
        assert not Payment.objects.filter(order__user=ada).exists()
        retried = _buy(ada, teapot)

        assert come_back.value.retry_after > 0
        assert (waiting.status, waiting.payment_intent_id) == (OrderStatus.PENDING, "")
        assert retried.order.pk == waiting.pk
        keys = {call.idempotency_key for call in stripe_stand_in.calls_to("payment_intents.create")}
        assert keys == {f"order:{waiting.pk}:payment-intent"}

    def test_a_refusal_cancels_the_order_and_records_no_payment(self, stripe_stand_in, ada, teapot):
        stripe_stand_in.answer("payment_intents.create", refused("Amount must be at least 50 cents"))

        with pytest.raises(StripeRefused, match="at least 50 cents"):
            _buy(ada, teapot)

        assert ada.orders.get().status == OrderStatus.CANCELED
        assert not Payment.objects.filter(order__user=ada).exists()


class TestTheSameCartAgain:
    def test_soon_after_it_gets_the_same_intent_while_it_can_still_be_paid(self, stripe_makes_intents, ada, teapot):
        first = _buy(ada, teapot)
        stripe_makes_intents.always(
            "payment_intents.retrieve", _intent(first.order.payment_intent_id, "requires_action")
        )

        again = _buy(ada, teapot)

        assert (again.order.pk, again.payment, again.client_secret) == (
            first.order.pk,
            first.payment,
            first.client_secret,
        )
        assert len(stripe_makes_intents.calls_to("payment_intents.create")) == 1

    @pytest.mark.parametrize("status", ["succeeded", "processing", "canceled", "requires_capture"])
    def test_whose_intent_can_no_longer_be_paid_is_a_new_order_and_intent(
        self, stripe_makes_intents, ada, teapot, status
    ):
        first = _buy(ada, teapot)
        stripe_makes_intents.always("payment_intents.retrieve", _intent(first.order.payment_intent_id, status))

        again = _buy(ada, teapot)

        assert again.order.pk != first.order.pk
        assert again.order.payment_intent_id == f"pi_order_{again.order.pk}"
        assert Order.objects.get(pk=first.order.pk).status == OrderStatus.PENDING  # its event settles it

    def test_whose_intent_stripe_no_longer_holds_is_a_new_order(self, stripe_makes_intents, ada, teapot):
        first = _buy(ada, teapot)
        stripe_makes_intents.always("payment_intents.retrieve", missing("payment_intent"))

        assert _buy(ada, teapot).order.pk != first.order.pk

    def test_while_stripe_cannot_say_what_became_of_the_intent_no_second_order_is_made(
        self, stripe_makes_intents, ada, teapot
    ):
        _buy(ada, teapot)
        stripe_makes_intents.always("payment_intents.retrieve", unreachable())

        with pytest.raises(StripeUnavailable):
            _buy(ada, teapot)

        assert ada.orders.count() == 1
        assert len(stripe_makes_intents.calls_to("payment_intents.create")) == 1

    def test_after_the_reuse_window_it_is_a_new_order(self, stripe_makes_intents, ada, teapot, settings):
        first = _buy(ada, teapot)
        Order.objects.filter(pk=first.order.pk).update(
            created_at=timezone.now() - timedelta(seconds=settings.CHECKOUT_REUSE_SECONDS + 1)
        )

        assert _buy(ada, teapot).order.pk != first.order.pk
        assert "payment_intents.retrieve" not in stripe_makes_intents.paths

    def test_a_twin_that_bought_it_again_while_stripe_was_asked_hands_back_its_intent(
        self, stripe_makes_intents, ada, teapot
    ):
        first = _buy(ada, teapot)
        twins = []

        def paid_while_a_twin_bought_again(call):
            if call.args[0] == first.order.payment_intent_id:
                twin = OrderFactory(
                    user=ada,
                    amount_total=5000,
                    cart_fingerprint=first.order.cart_fingerprint,
                    payment_intent_id="pi_of_the_twin",
                )
                twins.append(PaymentFactory(order=twin, status=PaymentStatus.PENDING))
                return _intent(call.args[0], "succeeded")
            return _intent(call.args[0], "requires_payment_method")

        stripe_makes_intents.always("payment_intents.retrieve", paid_while_a_twin_bought_again)

        again = _buy(ada, teapot)

        assert (again.order.pk, again.payment, again.client_secret) == (
            twins[0].order_id,
            twins[0],
            "pi_of_the_twin_secret_1",
        )
        assert len(stripe_makes_intents.calls_to("payment_intents.create")) == 1


def _app_order(**fields) -> Order:
    order = OrderFactory(payment_intent_id="pi_app", amount_total=5000, currency="eur", **fields)
    PaymentFactory(order=order, status=PaymentStatus.PENDING, stripe_status="requires_payment_method")
    return order


def _disallowed() -> stripe.InvalidRequestError:
    return refused("You cannot cancel this PaymentIntent because it has a status of succeeded.")


class TestCancel:
    def test_stripe_cancels_the_intent_and_its_payment_is_recorded_canceled(self, stripe_stand_in):
        order = _app_order()
        stripe_stand_in.always("payment_intents.cancel", _intent("pi_app", "canceled"))

        assert intent_cancel(order=order, by=order.user) is True

        cancel = stripe_stand_in.calls[0]
        assert (cancel.args, cancel.params) == (("pi_app",), {"cancellation_reason": "requested_by_customer"})
        assert cancel.idempotency_key is None  # a refusal kept under a key would be replayed for a day
        assert Payment.objects.get(payment_intent_id="pi_app").status == PaymentStatus.CANCELED

    def test_an_intent_paid_meanwhile_is_applied_and_the_cancel_answers_no(self, stripe_stand_in):
        order = _app_order()
        stripe_stand_in.always("payment_intents.cancel", _disallowed())
        stripe_stand_in.always("payment_intents.retrieve", _intent("pi_app", "succeeded", amount_received=5000))

        assert intent_cancel(order=order, by=order.user) is False

        assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
        assert Payment.objects.get(payment_intent_id="pi_app").status == PaymentStatus.SUCCEEDED

    def test_an_intent_the_bank_is_processing_cannot_be_canceled_yet(self, stripe_stand_in):
        order = _app_order()
        stripe_stand_in.always("payment_intents.cancel", _disallowed())
        stripe_stand_in.always("payment_intents.retrieve", _intent("pi_app", "processing"))

        with pytest.raises(OrderActionRefused, match="being processed by the bank"):
            intent_cancel(order=order, by=order.user)

        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING
        assert Payment.objects.get(payment_intent_id="pi_app").status == PaymentStatus.PROCESSING

    def test_an_intent_canceled_in_stripe_already_cancels_the_order(self, stripe_stand_in):
        order = _app_order()
        stripe_stand_in.always("payment_intents.cancel", _disallowed())
        stripe_stand_in.always("payment_intents.retrieve", _intent("pi_app", "canceled"))

        assert intent_cancel(order=order, by=order.user) is True

        assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELED

    def test_a_refusal_for_another_reason_changes_nothing(self, stripe_stand_in):
        order = _app_order()
        stripe_stand_in.always("payment_intents.cancel", refused("This PaymentIntent is locked"))
        stripe_stand_in.always("payment_intents.retrieve", _intent("pi_app", "requires_payment_method"))

        with pytest.raises(StripeRefused, match="locked"):
            intent_cancel(order=order, by=order.user)

        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING
        assert Payment.objects.get(payment_intent_id="pi_app").status == PaymentStatus.PENDING

    def test_a_key_stripe_will_not_take_is_a_refusal(self, stripe_stand_in):
        order = _app_order()
        stripe_stand_in.always(
            "payment_intents.cancel", stripe.AuthenticationError("Invalid API Key provided", http_status=401)
        )

        with pytest.raises(StripeRefused, match="Invalid API Key"):
            intent_cancel(order=order, by=order.user)

        assert stripe_stand_in.paths == ["payment_intents.cancel"]

    def test_stripe_out_of_reach_changes_nothing(self, stripe_stand_in):
        order = _app_order()
        stripe_stand_in.always("payment_intents.cancel", unreachable())

        with pytest.raises(StripeUnavailable):
            intent_cancel(order=order, by=order.user)

        assert Payment.objects.get(payment_intent_id="pi_app").status == PaymentStatus.PENDING


class TestSync:
    def test_a_declined_card_fails_the_order_and_names_the_decline(self, stripe_stand_in):
        order = _app_order()
        declined = {"code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card was declined."}
        stripe_stand_in.always(
            "payment_intents.retrieve", _intent("pi_app", "requires_payment_method", last_payment_error=declined)
        )

        intent_sync(order=order, by=order.user)

        assert Order.objects.get(pk=order.pk).status == OrderStatus.FAILED
        payment = Payment.objects.get(payment_intent_id="pi_app")
        assert (payment.status, payment.decline_code) == (PaymentStatus.FAILED, "insufficient_funds")

    def test_an_intent_that_took_another_amount_puts_the_order_in_review(self, stripe_stand_in):
        order = _app_order()
        stripe_stand_in.always("payment_intents.retrieve", _intent("pi_app", "succeeded", amount_received=4000))

        intent_sync(order=order, by=order.user)

        assert Order.objects.get(pk=order.pk).status == OrderStatus.REVIEW

    def test_stripe_refusing_the_read_is_a_refusal_and_changes_nothing(self, stripe_stand_in):
        order = _app_order()
        stripe_stand_in.always("payment_intents.retrieve", missing("payment_intent"))

        with pytest.raises(StripeRefused):
            intent_sync(order=order, by=order.user)

        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING
