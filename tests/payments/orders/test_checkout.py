"""Starting a payment in Stripe (apps/payments/orders/checkout.py): the Checkout Session of an order, made once
under the order's key and charging exactly the order's own lines; the same cart again soon getting the same
order and session back, or a new order once that session can no longer be paid; payment links naming Stripe's
prices.

Here each function called directly, with Stripe played by an in-memory stand-in: what the session and the link
are made with, what a refusal, a spent key or no answer leaves behind, and what happens while Stripe cannot say
whether a session is still open. `canceled_unless_started` on its own (a twin that started the payment keeps its
order) is in tests/payments/orders/test_lifecycle.py, pushing a buyer or a product on the spot in
tests/payments/mirror/test_refs.py. The whole path over HTTP, with the emulator's checkout page, is in
tests/journeys/test_checkout.py.
"""

from datetime import timedelta

import pytest
import stripe
from django.utils import timezone

from apps.catalog.models import Price
from apps.payments.gateway.errors import StripeKeySpent, StripeRefused
from apps.payments.mirror.models import MirrorKind, MirrorState
from apps.payments.mirror.refs import NotInStripe
from apps.payments.mirror.specs import price_immutable
from apps.payments.orders.checkout import cart_fingerprint, checkout_for_cart, payment_link_create
from apps.payments.orders.errors import CheckoutUnavailable
from apps.payments.orders.lifecycle import CartLine
from apps.payments.orders.models import Order, OrderStatus, PaymentLink
from tests.catalog.factories import PriceFactory, ProductFactory
from tests.payments.factories import MirrorRecordFactory
from tests.payments.stripe_stand_in import missing, refused, unreachable
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

URLS = {"success_url": "https://shop.example/thanks", "cancel_url": "https://shop.example/cart"}
OURS = "testsuite"  # STRIPE_APP_NAMESPACE of the test settings


def _in_stripe(kind: str, object_id: int, stripe_id: str, **fields) -> None:
    MirrorRecordFactory(
        kind=kind, object_id=object_id, stripe_id=stripe_id, state=MirrorState.SYNCED, synced_version=1, **fields
    )


def _on_sale(name: str, unit_amount: int, **fields) -> Price:
    """A catalog price whose product and price Stripe holds as the catalog has them."""
    price = PriceFactory(product=ProductFactory(name=name), unit_amount=unit_amount, currency="eur", **fields)
    _in_stripe(MirrorKind.PRODUCT, price.product_id, f"prod_{name.lower()}")
    _in_stripe(MirrorKind.PRICE, price.pk, f"price_{name.lower()}", pushed={"immutable": price_immutable(price)})
    return price


def _session(call) -> dict:
    """Stripe's answer to a session it made: one per key, as its idempotency would have it."""
    order = call.params["metadata"]["order"]
    return {
        "id": f"cs_order_{order}",
        "object": "checkout.session",
        "status": "open",
        "url": f"https://checkout.stripe.com/c/pay/cs_order_{order}",
    }


@pytest.fixture
def ada(db):
    user = UserFactory()
    _in_stripe(MirrorKind.USER, user.pk, "cus_ada")
    return user


@pytest.fixture
def teapot(db):
    return _on_sale("Teapot", 4500)


@pytest.fixture
def cup(db):
    return _on_sale("Cup", 1200)


@pytest.fixture
def stripe_opens_sessions(stripe_stand_in):
    stripe_stand_in.always("checkout.sessions.create", _session)
    return stripe_stand_in


def _buy(user, *lines: tuple[Price, int], **urls) -> Order:
    return checkout_for_cart(
        user=user, lines=[CartLine(price=price, quantity=quantity) for price, quantity in lines], **{**URLS, **urls}
    )


def _aged(order: Order, seconds: int) -> None:
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))


class TestStartingACheckout:
    def test_the_session_charges_the_orders_own_lines_for_the_users_customer(
        self, stripe_opens_sessions, ada, teapot, cup
    ):
        order = _buy(ada, (teapot, 2), (cup, 1))

        create = stripe_opens_sessions.calls_to("checkout.sessions.create")[0]
        reference = {"order": str(order.pk), "app_namespace": OURS}
        assert create.params == {
            "mode": "payment",
            "line_items": [
                {"price_data": {"currency": "eur", "unit_amount": 4500, "product": "prod_teapot"}, "quantity": 2},
                {"price_data": {"currency": "eur", "unit_amount": 1200, "product": "prod_cup"}, "quantity": 1},
            ],
            **URLS,
            "client_reference_id": str(order.pk),
            "metadata": reference,
            "payment_intent_data": {"metadata": reference},
            "customer": "cus_ada",
        }
        assert create.idempotency_key == f"order:{order.pk}:checkout"
        assert (order.status, order.amount_total, order.currency) == (OrderStatus.PENDING, 10200, "eur")
        assert (order.checkout_session_id, order.stripe_customer_id) == (f"cs_order_{order.pk}", "cus_ada")
        assert order.checkout_url == f"https://checkout.stripe.com/c/pay/cs_order_{order.pk}"

    def test_a_price_changed_after_the_order_was_made_does_not_change_what_stripe_charges(
        self, stripe_stand_in, ada, teapot
    ):
        stripe_stand_in.answer("checkout.sessions.create", unreachable(), _session)
        with pytest.raises(CheckoutUnavailable):
            _buy(ada, (teapot, 1))
        Price.objects.filter(pk=teapot.pk).update(unit_amount=9900)
        teapot.refresh_from_db()

        order = _buy(ada, (teapot, 1))

        sent = stripe_stand_in.calls_to("checkout.sessions.create")[1].params["line_items"]
        assert sent[0]["price_data"] == {"currency": "eur", "unit_amount": 4500, "product": "prod_teapot"}
        assert order.amount_total == 4500

    def test_a_product_the_mirror_has_not_brought_yet_is_pushed_before_the_session_names_it(
        self, stripe_opens_sessions, ada
    ):
        kettle = PriceFactory(product=ProductFactory(name="Kettle", description=""), unit_amount=3000, currency="eur")
        stripe_opens_sessions.always(
            "products.create",
            {"id": "prod_kettle", "object": "product", "name": "Kettle", "active": True, "created": 1, "updated": 1},
        )

        _buy(ada, (kettle, 1))

        assert stripe_opens_sessions.paths == ["products.create", "checkout.sessions.create"]
        line = stripe_opens_sessions.calls_to("checkout.sessions.create")[0].params["line_items"][0]
        assert line["price_data"]["product"] == "prod_kettle"

    def test_a_cart_stripe_cannot_take_yet_leaves_no_order_behind(self, stripe_stand_in, ada):
        kettle = PriceFactory(product=ProductFactory(description=""), currency="eur")
        stripe_stand_in.always("products.create", unreachable())

        with pytest.raises(NotInStripe) as come_back:
            _buy(ada, (kettle, 1))

        assert come_back.value.retry_after > 0
        assert not ada.orders.exists()
        assert "checkout.sessions.create" not in stripe_stand_in.paths


class TestTheSameCartAgain:
    def test_soon_after_it_gets_the_same_order_and_its_open_session(self, stripe_opens_sessions, ada, teapot):
        first = _buy(ada, (teapot, 2))
        stripe_opens_sessions.always("checkout.sessions.retrieve", {"id": first.checkout_session_id, "status": "open"})

        again = _buy(ada, (teapot, 2))

        assert (again.pk, again.checkout_url) == (first.pk, first.checkout_url)
        assert len(stripe_opens_sessions.calls_to("checkout.sessions.create")) == 1
        assert stripe_opens_sessions.calls_to("checkout.sessions.retrieve")[0].args == (first.checkout_session_id,)

    @pytest.mark.parametrize(
        ("quantity", "urls"),
        [
            pytest.param(3, {}, id="another-quantity"),
            pytest.param(2, {"cancel_url": "https://shop.example/elsewhere"}, id="another-return-page"),
        ],
    )
    def test_another_quantity_or_return_page_is_another_order(self, stripe_opens_sessions, ada, teapot, quantity, urls):
        first = _buy(ada, (teapot, 2))

        again = _buy(ada, (teapot, quantity), **urls)

        assert again.pk != first.pk
        assert len(stripe_opens_sessions.calls_to("checkout.sessions.create")) == 2
        assert "checkout.sessions.retrieve" not in stripe_opens_sessions.paths

    def test_another_user_with_the_same_cart_gets_an_order_of_their_own(self, stripe_opens_sessions, ada, teapot):
        first = _buy(ada, (teapot, 1))
        bob = UserFactory()
        _in_stripe(MirrorKind.USER, bob.pk, "cus_bob")

        theirs = _buy(bob, (teapot, 1))

        assert theirs.pk != first.pk
        assert theirs.stripe_customer_id == "cus_bob"

    def test_after_the_reuse_window_it_is_a_new_order(self, stripe_opens_sessions, ada, teapot, settings):
        first = _buy(ada, (teapot, 1))
        _aged(first, settings.CHECKOUT_REUSE_SECONDS + 1)

        again = _buy(ada, (teapot, 1))

        assert again.pk != first.pk
        assert "checkout.sessions.retrieve" not in stripe_opens_sessions.paths

    @pytest.mark.parametrize(
        "session",
        [
            pytest.param({"status": "complete"}, id="paid-a-moment-ago"),
            pytest.param({"status": "expired"}, id="expired-a-moment-ago"),
            pytest.param(missing("checkout.session"), id="gone-from-stripe"),
        ],
    )
    def test_whose_session_can_no_longer_be_paid_is_a_new_order_and_the_old_one_is_left_to_its_event(
        self, stripe_opens_sessions, ada, teapot, session
    ):
        first = _buy(ada, (teapot, 1))
        stripe_opens_sessions.always("checkout.sessions.retrieve", session)

        again = _buy(ada, (teapot, 1))

        assert again.pk != first.pk
        assert again.checkout_session_id == f"cs_order_{again.pk}"
        left = Order.objects.get(pk=first.pk)
        assert (left.status, left.checkout_session_id) == (OrderStatus.PENDING, first.checkout_session_id)

    def test_a_twin_that_started_the_cart_again_while_stripe_was_asked_gets_its_order_back(
        self, stripe_opens_sessions, ada, teapot
    ):
        paid = _buy(ada, (teapot, 1))
        made_by_the_twin = []

        def paid_while_a_twin_bought_again(call):
            made_by_the_twin.append(
                Order.objects.create(
                    user=ada,
                    currency="eur",
                    amount_total=4500,
                    cart_fingerprint=paid.cart_fingerprint,
                    checkout_session_id="cs_of_the_twin",
                )
            )
            return {"id": call.args[0], "status": "complete"}

        stripe_opens_sessions.always("checkout.sessions.retrieve", paid_while_a_twin_bought_again)

        again = _buy(ada, (teapot, 1))

        assert (again.pk, again.checkout_session_id) == (made_by_the_twin[0].pk, "cs_of_the_twin")
        assert len(stripe_opens_sessions.calls_to("checkout.sessions.create")) == 1
        assert ada.orders.count() == 2

    def test_while_stripe_cannot_say_whether_the_session_is_open_no_second_order_is_made(
        self, stripe_opens_sessions, ada, teapot
    ):
        first = _buy(ada, (teapot, 1))
        stripe_opens_sessions.always("checkout.sessions.retrieve", unreachable())

        with pytest.raises(CheckoutUnavailable, match="the session's state is unknown") as come_back:
            _buy(ada, (teapot, 1))

        assert come_back.value.retry_after > 0
        assert list(ada.orders.values_list("pk", flat=True)) == [first.pk]
        assert len(stripe_opens_sessions.calls_to("checkout.sessions.create")) == 1

    def test_stripe_refusing_to_say_what_became_of_the_session_is_a_refusal(self, stripe_opens_sessions, ada, teapot):
        _buy(ada, (teapot, 1))
        stripe_opens_sessions.always("checkout.sessions.retrieve", refused("This API key cannot read sessions"))

        with pytest.raises(StripeRefused, match="cannot read sessions"):
            _buy(ada, (teapot, 1))

        assert ada.orders.count() == 1


class TestWhenStripeDoesNotMakeTheSession:
    def test_no_answer_keeps_the_order_pending_and_the_retry_asks_again_with_the_same_key(
        self, stripe_stand_in, ada, teapot
    ):
        stripe_stand_in.answer("checkout.sessions.create", unreachable(), _session)

        with pytest.raises(CheckoutUnavailable, match="checkout not started") as come_back:
            _buy(ada, (teapot, 1))
        waiting = ada.orders.get()
        retried = _buy(ada, (teapot, 1))

        assert come_back.value.retry_after > 0
        assert (waiting.status, waiting.checkout_session_id) == (OrderStatus.PENDING, None)
        assert retried.pk == waiting.pk
        keys = {call.idempotency_key for call in stripe_stand_in.calls_to("checkout.sessions.create")}
        assert keys == {f"order:{waiting.pk}:checkout"}

    def test_a_refusal_cancels_the_order_and_the_next_try_is_a_new_order(self, stripe_stand_in, ada, teapot):
        stripe_stand_in.answer("checkout.sessions.create", refused("Invalid URL: cancel_url"), _session)

        with pytest.raises(StripeRefused, match="Invalid URL"):
            _buy(ada, (teapot, 1))
        refused_order = ada.orders.get()
        again = _buy(ada, (teapot, 1))

        assert refused_order.status == OrderStatus.CANCELED
        assert again.pk != refused_order.pk
        assert again.status == OrderStatus.PENDING

    def test_a_key_stripe_remembers_for_other_parameters_cancels_the_order(self, stripe_stand_in, ada, teapot):
        spent = stripe.IdempotencyError("Keys for idempotent requests can only be used with the same parameters")
        spent.http_status = 400
        stripe_stand_in.answer("checkout.sessions.create", spent)

        with pytest.raises(StripeKeySpent):
            _buy(ada, (teapot, 1))

        assert ada.orders.get().status == OrderStatus.CANCELED


class TestCartFingerprint:
    def test_the_same_cart_and_pages_are_the_same_request(self, teapot, cup):
        lines = [CartLine(price=teapot, quantity=2), CartLine(price=cup, quantity=1)]

        assert cart_fingerprint(lines, **URLS) == cart_fingerprint(list(lines), **URLS)

    def test_another_quantity_or_page_is_another_request(self, teapot):
        base = cart_fingerprint([CartLine(price=teapot, quantity=2)], **URLS)

        assert cart_fingerprint([CartLine(price=teapot, quantity=3)], **URLS) != base
        assert cart_fingerprint([CartLine(price=teapot, quantity=2)], **{**URLS, "success_url": "https://x"}) != base


def _link(call) -> dict:
    return {"id": "plink_1", "object": "payment_link", "url": "https://buy.stripe.com/plink_1", **call.params}


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True)


class TestPaymentLinks:
    def test_a_link_names_stripes_prices_and_carries_our_namespace_to_its_payments(
        self, stripe_stand_in, teapot, cup, staff
    ):
        stripe_stand_in.always("payment_links.create", _link)

        link = payment_link_create(
            lines=[CartLine(price=teapot, quantity=2), CartLine(price=cup, quantity=1)], created_by=staff
        )

        assert stripe_stand_in.paths == ["payment_links.create"]  # Stripe holds both prices as they are now
        assert stripe_stand_in.calls[0].params == {
            "line_items": [{"price": "price_teapot", "quantity": 2}, {"price": "price_cup", "quantity": 1}],
            "metadata": {"created_by": str(staff.pk), "app_namespace": OURS},
            "payment_intent_data": {"metadata": {"app_namespace": OURS}},
        }
        stored = PaymentLink.objects.get(created_by=staff)
        assert (stored, stored.stripe_id, stored.url, stored.currency) == (
            link,
            "plink_1",
            "https://buy.stripe.com/plink_1",
            "eur",
        )
        assert stored.lines == [{"price": teapot.pk, "quantity": 2}, {"price": cup.pk, "quantity": 1}]
        assert stored.created_by == staff

    def test_a_link_for_plans_starts_subscriptions_with_the_longest_trial_of_its_plans(self, stripe_stand_in):
        monthly = _on_sale("Pro", 1500, recurring_interval="month", trial_days=7)
        addon = _on_sale("Storage", 500, recurring_interval="month", trial_days=14)
        stripe_stand_in.always("payment_links.create", _link)

        payment_link_create(
            lines=[CartLine(price=monthly, quantity=1), CartLine(price=addon, quantity=1)], created_by=UserFactory()
        )

        params = stripe_stand_in.calls[0].params
        assert params["subscription_data"] == {"metadata": {"app_namespace": OURS}, "trial_period_days": 14}
        assert "payment_intent_data" not in params

    def test_a_link_for_plans_without_trials_gives_none(self, stripe_stand_in):
        monthly = _on_sale("Pro", 1500, recurring_interval="month")
        stripe_stand_in.always("payment_links.create", _link)

        payment_link_create(lines=[CartLine(price=monthly, quantity=1)], created_by=UserFactory())

        assert stripe_stand_in.calls[0].params["subscription_data"] == {"metadata": {"app_namespace": OURS}}

    def test_stripe_refusing_the_link_keeps_none(self, stripe_stand_in, teapot, staff):
        stripe_stand_in.always("payment_links.create", refused("Payment links are not enabled"))

        with pytest.raises(StripeRefused, match="not enabled"):
            payment_link_create(lines=[CartLine(price=teapot, quantity=1)], created_by=staff)

        assert not PaymentLink.objects.filter(created_by=staff).exists()

    def test_stripe_out_of_reach_is_a_come_back_and_keeps_none(self, stripe_stand_in, teapot, staff):
        stripe_stand_in.always("payment_links.create", unreachable())

        with pytest.raises(CheckoutUnavailable) as come_back:
            payment_link_create(lines=[CartLine(price=teapot, quantity=1)], created_by=staff)

        assert come_back.value.retry_after > 0
        assert not PaymentLink.objects.filter(created_by=staff).exists()

    def test_a_price_stripe_does_not_hold_yet_is_a_come_back_and_no_link(
        self, stripe_stand_in, settings, teapot, staff
    ):
        settings.STRIPE_MIRROR_ENABLED = False

        with pytest.raises(CheckoutUnavailable, match="not configured") as come_back:
            payment_link_create(lines=[CartLine(price=teapot, quantity=1)], created_by=staff)

        assert come_back.value.retry_after == 60
        assert stripe_stand_in.calls == []
        assert not PaymentLink.objects.filter(created_by=staff).exists()
