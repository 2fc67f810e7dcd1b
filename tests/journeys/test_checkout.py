"""A cart becomes a paid order exactly once: the whole journey over HTTP, a real worker, the emulator."""

import time
import uuid
from datetime import timedelta

import pytest
import requests
import stripe
from django.db import transaction
from django.utils import timezone

from apps.catalog import services as catalog
from apps.payments.mirror.models import MirrorKind, MirrorRecord
from apps.payments.orders.models import Order, OrderRefund, OrderStatus, OrderTransition
from apps.payments.orders.unstarted import unstarted_orders_close
from apps.users import services as users
from apps.users.models import User
from tests.helpers import client_for
from tests.payments.helpers import (
    PASSWORD,
    broker_unreachable,
    checkout_cart,
    checkout_started,
    order_settles,
    stripe_objects_by_ref,
    wait_until,
    webhooks_quiet,
)
from tests.payments.webhook_signing import body, event, signature
from tests.users.factories import operator

pytestmark = pytest.mark.integration


def _stripe(shop) -> stripe.StripeClient:
    return stripe.StripeClient(shop["emulator"].api_key, base_addresses={"api": shop["emulator"].url})


class TestJourney:
    def test_checkout_then_pay_makes_a_paid_order_once(self, shop):
        client, started = checkout_started(shop)
        emulator = shop["emulator"]

        session = stripe.StripeClient(
            emulator.api_key, base_addresses={"api": emulator.url}
        ).v1.checkout.sessions.retrieve(started["session_id"])
        emulator.complete_checkout(started["session_id"], "paid")
        order = order_settles(started["order"], OrderStatus.PAID)
        webhooks_quiet(emulator)

        assert started["url"].endswith(started["session_id"])
        assert (session.amount_total, session.currency, session.client_reference_id) == (10200, "eur", str(order.pk))
        assert session.metadata.order == str(order.pk)
        detail = client.get(f"/api/v1/orders/{order.pk}").json()
        assert (detail["status"], detail["amount_total"], detail["currency"], detail["amount_refunded"]) == (
            "paid",
            10200,
            "eur",
            0,
        )
        assert [
            (line["product_name"], line["unit_amount"], line["quantity"], line["amount"]) for line in detail["lines"]
        ] == [
            ("Teapot", 4500, 2, 9000),
            ("Cup", 1200, 1, 1200),
        ]
        assert detail["paid_at"]
        transitions = list(OrderTransition.objects.filter(order=order).values_list("from_status", "to_status", "cause"))
        assert len(transitions) == 1
        assert transitions[0][:2] == ("pending", "paid")
        assert transitions[0][2].startswith("checkout.session.completed evt_")
        assert order.payment_intent_id.startswith("pi_")

    def test_a_declined_card_fails_the_order_and_a_second_try_pays_it(self, shop):
        _, started = checkout_started(shop)
        emulator = shop["emulator"]

        emulator.complete_checkout(started["session_id"], "declined")
        order_settles(started["order"], OrderStatus.FAILED)
        emulator.complete_checkout(started["session_id"], "paid")

        order = order_settles(started["order"], OrderStatus.PAID)
        assert list(order.transitions.values_list("to_status", flat=True)) == ["failed", "paid"]

    def test_a_delayed_payment_pays_the_order_when_it_clears(self, shop):
        _, started = checkout_started(shop)
        emulator = shop["emulator"]

        emulator.complete_checkout(started["session_id"], "delayed")
        webhooks_quiet(emulator)
        still = Order.objects.get(pk=started["order"])
        emulator.control("POST", f"checkout/sessions/{started['session_id']}/settle", {"outcome": "succeeded"})

        assert still.status == OrderStatus.PENDING
        order_settles(started["order"], OrderStatus.PAID)

    def test_an_expired_checkout_expires_the_order(self, shop):
        _, started = checkout_started(shop)

        shop["emulator"].control("POST", f"checkout/sessions/{started['session_id']}/expire")

        order_settles(started["order"], OrderStatus.EXPIRED)

    def test_the_success_redirect_racing_the_webhook_changes_the_order_once(self, shop):
        client, started = checkout_started(shop)
        emulator = shop["emulator"]
        emulator.control("POST", "webhooks", {"paused": True})

        emulator.complete_checkout(started["session_id"], "paid")
        synced = client.get(f"/api/v1/orders/{started['order']}", {"sync": "1"}).json()
        emulator.control("POST", "webhooks/flush")
        emulator.control("POST", "webhooks", {"paused": False})
        webhooks_quiet(emulator)

        assert synced["status"] == "paid"
        assert OrderTransition.objects.filter(order_id=started["order"], to_status="paid").count() == 1
        assert OrderTransition.objects.get(order_id=started["order"]).cause.startswith("sync requested")

    def test_duplicated_and_reordered_events_change_nothing_more(self, shop):
        shop["emulator"].control("POST", "webhooks", {"duplicate_ratio": 1.0, "shuffle": True})
        _, started = checkout_started(shop)

        shop["emulator"].complete_checkout(started["session_id"], "paid")
        order_settles(started["order"], OrderStatus.PAID)
        webhooks_quiet(shop["emulator"])

        assert OrderTransition.objects.filter(order_id=started["order"]).count() == 1

    def test_a_late_expiry_never_downgrades_a_paid_order(self, shop, live_server, settings):
        _, started = checkout_started(shop)
        emulator = shop["emulator"]
        emulator.complete_checkout(started["session_id"], "paid")
        order_settles(started["order"], OrderStatus.PAID)
        stale = {
            "id": started["session_id"],
            "object": "checkout.session",
            "status": "expired",
            "metadata": {"order": str(started["order"])},
        }
        payload = body(event("checkout.session.expired", stale, event_id="evt_late_expiry"))

        answer = requests.post(
            f"{live_server.url}/stripe/webhook/",
            data=payload,
            headers={"Stripe-Signature": signature(payload, settings.STRIPE_WEBHOOK_SECRETS[0])},
            timeout=10,
        )
        webhooks_quiet(emulator)

        assert answer.status_code == 200
        assert Order.objects.get(pk=started["order"]).status == OrderStatus.PAID


class TestCancelAndRefund:
    def test_cancelling_a_pending_order_expires_its_checkout(self, shop):
        client, started = checkout_started(shop)
        emulator = shop["emulator"]

        answer = client.post(f"/api/v1/orders/{started['order']}/cancel")
        session = stripe.StripeClient(
            emulator.api_key, base_addresses={"api": emulator.url}
        ).v1.checkout.sessions.retrieve(started["session_id"])
        webhooks_quiet(emulator)

        assert answer.status_code == 200
        assert answer.json()["status"] == "canceled"
        assert session.status == "expired"
        assert Order.objects.get(pk=started["order"]).status == OrderStatus.CANCELED  # the expiry event changes nothing

    def test_cancelling_a_paid_order_refunds_it_in_full(self, shop):
        client, started = checkout_started(shop)
        shop["emulator"].complete_checkout(started["session_id"], "paid")
        order_settles(started["order"], OrderStatus.PAID)

        answer = client.post(f"/api/v1/orders/{started['order']}/cancel")
        webhooks_quiet(shop["emulator"])

        assert answer.json()["status"] == "refunded"
        order = Order.objects.get(pk=started["order"])
        assert (order.amount_refunded, order.refunds.count()) == (10200, 1)
        again = client.post(f"/api/v1/orders/{started['order']}/cancel")
        assert (again.status_code, again.json()["status"], order.refunds.count()) == (200, "refunded", 1)

    def test_a_cancel_sent_again_after_stripe_failed_to_answer_ends_the_order_once(self, shop):
        """Stripe expires the session but answers 500: the customer is told to try again, and the retry,
        coming after the expiry's webhook, finds the order ended (before it, see test_sessions.py)."""
        client, started = checkout_started(shop)
        emulator = shop["emulator"]
        emulator.add_fault(status=500, phase="after", count=1, method="POST", path_prefix="/v1/checkout/sessions/")

        first = client.post(f"/api/v1/orders/{started['order']}/cancel")
        webhooks_quiet(emulator)
        again = client.post(f"/api/v1/orders/{started['order']}/cancel")

        assert first.status_code == 503
        assert (again.status_code, again.json()["status"]) == (200, "expired")
        assert Order.objects.get(pk=started["order"]).status == OrderStatus.EXPIRED

    def test_partial_then_full_refund_by_staff_and_a_double_click_refunds_once(self, shop):
        _, started = checkout_started(shop)
        shop["emulator"].complete_checkout(started["session_id"], "paid")
        order_settles(started["order"], OrderStatus.PAID)
        staff = client_for(shop["staff"])
        url = f"/api/v1/orders/{started['order']}/refunds"

        first = staff.post(url, {"amount": 2000}, format="json")
        double_click = staff.post(url, {"amount": 2000}, format="json")
        too_much = staff.post(url, {"amount": 8201}, format="json")
        rest = staff.post(url, {}, format="json")
        rest_again = staff.post(url, {}, format="json")  # a double click on "refund the rest"
        other_staff = client_for(operator(email="boss@example.com"))
        nothing_left = other_staff.post(url, {}, format="json")
        webhooks_quiet(shop["emulator"])

        assert (first.status_code, first.json()["order"]["status"]) == (201, "partially_refunded")
        assert double_click.json()["stripe_refund_id"] == first.json()["stripe_refund_id"]
        assert too_much.status_code == 400
        assert "amount" in too_much.json()
        assert (rest.status_code, rest.json()["amount"], rest.json()["order"]["status"]) == (201, 8200, "refunded")
        assert rest_again.json()["stripe_refund_id"] == rest.json()["stripe_refund_id"]
        assert nothing_left.status_code == 409
        order = Order.objects.get(pk=started["order"])
        assert (order.status, order.amount_refunded, order.refunds.count()) == (OrderStatus.REFUNDED, 10200, 2)
        stripe_refunds = [
            r for r in shop["emulator"].requests_seen(method="POST", path_prefix="/v1/refunds") if r["status"] == 200
        ]
        assert len({r["idempotency_key"] for r in stripe_refunds}) == 2

    def test_only_staff_refund(self, shop):
        client, started = checkout_started(shop)

        assert client.post(f"/api/v1/orders/{started['order']}/refunds", {}, format="json").status_code == 403

    def test_a_refund_made_in_the_dashboard_counts(self, shop):
        _, started = checkout_started(shop)
        emulator = shop["emulator"]
        emulator.complete_checkout(started["session_id"], "paid")
        order = order_settles(started["order"], OrderStatus.PAID)

        stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url}).v1.refunds.create(
            params={"payment_intent": order.payment_intent_id, "amount": 1200}
        )

        refunded = order_settles(order.pk, OrderStatus.PARTIALLY_REFUNDED)
        webhooks_quiet(emulator)
        assert refunded.amount_refunded == 1200
        assert OrderRefund.objects.filter(order=order).count() == 1


class TestBadCarts:
    @pytest.mark.parametrize(
        ("lines", "field"),
        [
            ([], "lines"),
            ([{"price": 999999, "quantity": 1}], "lines"),
            ([{"price": "teapot", "quantity": 0}], "lines"),
            ([{"price": "teapot", "quantity": 1000}], "lines"),
            ([{"price": "teapot"}], "lines"),
            ([{"price": "teapot", "quantity": 1}] * 101, "lines"),
        ],
        ids=["empty", "unknown-price", "quantity-0", "quantity-1000", "no-quantity", "101-lines"],
    )
    def test_refused_with_field_errors_and_no_stripe_call(self, shop, lines, field):
        client = client_for(shop["customer"])
        calls_before = len(shop["emulator"].requests_seen())
        lines = [
            {**line, "price": shop["teapot"].pk if line.get("price") == "teapot" else line.get("price")}
            for line in lines
        ]

        answer = checkout_cart(client, lines)

        assert answer.status_code == 400
        assert field in answer.json()
        assert not Order.objects.exists()
        assert len(shop["emulator"].requests_seen()) == calls_before

    def test_archived_prices_mixed_currencies_and_plans_beside_one_off_prices(self, shop):
        client = client_for(shop["customer"])
        with transaction.atomic():
            monthly = catalog.price_create(
                product=shop["teapot"].product, unit_amount=500, currency="eur", recurring_interval="month"
            )
            dollars = catalog.price_create(product=shop["cup"].product, unit_amount=1300, currency="usd")
            gone = catalog.price_create(product=shop["cup"].product, unit_amount=1400, currency="eur")
        catalog.price_archive(price=gone)
        calls_before = len(shop["emulator"].requests_seen())

        recurring = checkout_cart(
            client, [{"price": monthly.pk, "quantity": 1}, {"price": shop["teapot"].pk, "quantity": 1}]
        )
        mixed = checkout_cart(
            client, [{"price": shop["teapot"].pk, "quantity": 1}, {"price": dollars.pk, "quantity": 1}]
        )
        archived = checkout_cart(client, [{"price": gone.pk, "quantity": 1}])

        assert "one-off prices or plans, not both" in str(recurring.json()["lines"])
        assert "share a currency" in str(mixed.json()["lines"])
        assert "not on sale" in str(archived.json()["lines"])
        assert not Order.objects.exists()
        # Refused before any Stripe call: nothing of checkout, and no customer or product mirrored for it.
        asked_since = shop["emulator"].requests_seen()[calls_before:]
        assert [r["path"] for r in asked_since if r["path"].startswith(("/v1/checkout", "/v1/customers"))] == []

    @pytest.mark.parametrize("url", ["ftp://shop.example/x", "javascript:alert(1)", "not a url", ""])
    def test_urls_that_are_not_http(self, shop, url):
        answer = checkout_cart(
            client_for(shop["customer"]), [{"price": shop["teapot"].pk, "quantity": 1}], success_url=url
        )

        assert answer.status_code == 400
        assert "success_url" in answer.json()

    def test_stripe_down_at_checkout_is_a_503_and_no_order_is_left_pending(self, shop):
        """Stripe may have made the session it did not answer for: the order waits for the client's retry, and
        the worker closes it once no retry can come back to it."""
        shop["emulator"].add_fault(status=503, path_prefix="/v1/checkout/sessions")

        answer = checkout_cart(client_for(shop["customer"]), [{"price": shop["teapot"].pk, "quantity": 1}])
        waiting = Order.objects.get()
        Order.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - timedelta(hours=1))
        still_down = unstarted_orders_close()  # Stripe cannot say what it made: the order is left for later
        shop["emulator"].control("DELETE", "faults")
        closed = unstarted_orders_close()

        assert (answer.status_code, int(answer["Retry-After"]) >= 1) == (503, True)
        assert (waiting.status, waiting.checkout_session_id) == (OrderStatus.PENDING, None)
        assert (still_down, closed) == (0, 1)
        assert Order.objects.get().status == OrderStatus.CANCELED


class TestVisibility:
    def test_another_users_order_is_404_and_anonymous_is_401(self, shop, api_client):
        _, started = checkout_started(shop)
        stranger = users.user_create(email="eve@example.com", password=PASSWORD)

        assert client_for(stranger).get(f"/api/v1/orders/{started['order']}").status_code == 404
        assert client_for(stranger).post(f"/api/v1/orders/{started['order']}/cancel").status_code == 404
        assert client_for(stranger).get("/api/v1/orders").json()["count"] == 0
        assert api_client.get("/api/v1/orders").status_code == 401
        assert client_for(shop["staff"]).get(f"/api/v1/orders/{started['order']}").status_code == 200

    def test_list_is_paginated_and_filters_by_status(self, shop):
        client, _ = checkout_started(shop)
        checkout_started(shop, quantity=3)

        assert client.get("/api/v1/orders", {"status": "pending"}).json()["count"] == 2
        assert client.get("/api/v1/orders", {"status": "paid"}).json()["count"] == 0
        assert client.get("/api/v1/orders", {"status": "sideways"}).status_code == 400


def test_payment_link_payments_become_orders_of_their_own(shop):
    emulator = shop["emulator"]
    User.objects.filter(pk=shop["customer"].pk).update(email_verified=True)  # Ada followed her welcome link
    answer = client_for(shop["staff"]).post(
        "/api/v1/payment-links", {"lines": [{"price": shop["teapot"].pk, "quantity": 1}]}, format="json"
    )
    link = answer.json()

    first = emulator.control("POST", f"payment_links/{link['payment_link_id']}/sessions")
    second = emulator.control("POST", f"payment_links/{link['payment_link_id']}/sessions")
    emulator.complete_checkout(first["id"], "paid", email="ada@example.com")
    emulator.complete_checkout(second["id"], "paid", email="guest@example.com")
    wait_until(lambda: Order.objects.filter(status=OrderStatus.PAID).count() == 2, message="two link orders")
    webhooks_quiet(emulator)

    assert answer.status_code == 201
    assert link["url"].startswith("http")
    by_email = {order.email: order for order in Order.objects.all()}
    assert by_email["ada@example.com"].user == shop["customer"]
    assert by_email["guest@example.com"].user is None
    assert all(
        order.payment_link_id == link["payment_link_id"] and order.amount_total == 4500 for order in by_email.values()
    )


def test_verify_prices_reports_what_differs(shop):
    answer = client_for(shop["customer"]).post(
        "/api/v1/payments/verify-prices",
        {
            "lines": [
                {"price": shop["teapot"].pk, "unit_amount": 4500, "quantity": 1},
                {"price": shop["cup"].pk, "unit_amount": 999, "quantity": 2},
                {"price": 999999, "unit_amount": 100, "quantity": 1},
            ]
        },
        format="json",
    )

    assert answer.json() == {
        "verified": False,
        "discrepancies": [
            {"price": shop["cup"].pk, "expected": 1200, "provided": 999},
            {"price": 999999, "expected": None, "provided": 100},
        ],
    }


def test_stats_for_staff(shop):
    _, paid = checkout_started(shop)
    checkout_started(shop, quantity=3)
    shop["emulator"].complete_checkout(paid["session_id"], "paid")
    order_settles(paid["order"], OrderStatus.PAID)
    time.sleep(0.1)

    stats = client_for(shop["staff"]).get("/api/v1/payments/stats").json()

    assert {(row["status"], row["count"]) for row in stats["by_status"]} == {("paid", 1), ("pending", 1)}
    assert stats["success_rate"] == 1.0
    assert [(row["currency"], row["revenue"], row["orders"]) for row in stats["revenue_per_day"]] == [("eur", 10200, 1)]
    assert client_for(shop["customer"]).get("/api/v1/payments/stats").status_code == 403


def test_admin_shows_orders_with_lines_and_transitions_and_cancels(shop, client):
    _, started = checkout_started(shop)
    operator = users.user_create(email="op@example.com", password=PASSWORD, is_staff=True, is_superuser=True)
    client.force_login(operator)

    listing = client.get("/admin/payments/order/", {"status__exact": "pending"})
    page = client.get(f"/admin/payments/order/{started['order']}/change/")
    client.post("/admin/payments/order/", {"action": "cancel", "_selected_action": [started["order"]]})

    assert listing.status_code == 200
    assert f">{started['order']}<" in listing.content.decode()
    assert "Teapot" in page.content.decode()
    assert started["session_id"] in page.content.decode()
    order = Order.objects.get(pk=started["order"])
    assert order.status == OrderStatus.CANCELED
    assert order.transitions.get().cause == f"canceled by user {operator.pk}"


def test_register_log_in_check_out_pay_and_see_the_order_paid(shop):
    """The journey as a client makes it: every step over the API, the payment on the emulator, the webhook."""
    from rest_framework.test import APIClient

    client = APIClient()
    registered = client.post(
        "/api/v1/auth/register", {"email": "new@example.com", "password": PASSWORD, "name": "New"}, format="json"
    )
    tokens = client.post("/api/v1/auth/token", {"email": "new@example.com", "password": PASSWORD}, format="json").json()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    cart = [{"price": shop["cup"].pk, "quantity": 3}]
    answer = checkout_cart(client, cart)
    if answer.status_code == 503:  # a worker is still bringing the new customer to Stripe: come back, as told
        assert int(answer["Retry-After"]) > 0
        new = User.objects.get(email="new@example.com")
        wait_until(
            lambda: MirrorRecord.objects.filter(kind=MirrorKind.USER, object_id=new.pk).exclude(stripe_id="").exists(),
            message="the new customer in Stripe",
        )
        answer = checkout_cart(client, cart)
    started = answer.json()
    shop["emulator"].complete_checkout(started["session_id"], "paid")

    order = order_settles(started["order"], OrderStatus.PAID)
    assert registered.status_code == 201
    assert order.user.email == "new@example.com"
    assert client.get(f"/api/v1/orders/{order.pk}").json()["amount_total"] == 3600


def test_the_same_cart_right_after_paying_it_is_a_new_order_not_the_paid_page(shop):
    """Within the five minutes a cart reuses its open session; one paid (or expired) a moment ago, whose
    event has not arrived yet, must not be handed back: it can no longer be paid."""
    client, started = checkout_started(shop)
    emulator = shop["emulator"]
    emulator.control("POST", "webhooks", {"paused": True})  # the payment's events are late
    emulator.complete_checkout(started["session_id"], "paid")

    again = checkout_cart(
        client, [{"price": shop["teapot"].pk, "quantity": 2}, {"price": shop["cup"].pk, "quantity": 1}]
    )
    emulator.control("POST", "webhooks", {"paused": False})

    assert again.status_code == 201, again.content
    assert (again.json()["order"], again.json()["session_id"]) != (started["order"], started["session_id"])
    sessions = stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url}).v1.checkout.sessions
    assert sessions.retrieve(again.json()["session_id"]).status == "open"
    order_settles(started["order"], OrderStatus.PAID)
    assert Order.objects.get(pk=again.json()["order"]).status == OrderStatus.PENDING


def test_paying_twice_before_either_event_arrives_never_hands_back_an_older_paid_session(shop):
    """Paid, bought again and paid again while the events are late: the third try must not fall back to the
    first order, still pending here, whose session was paid first."""
    client, first = checkout_started(shop)
    cart = [{"price": shop["teapot"].pk, "quantity": 2}, {"price": shop["cup"].pk, "quantity": 1}]
    emulator = shop["emulator"]
    emulator.control("POST", "webhooks", {"paused": True})
    emulator.complete_checkout(first["session_id"], "paid")
    second = checkout_cart(client, cart).json()
    emulator.complete_checkout(second["session_id"], "paid")

    third = checkout_cart(client, cart)
    emulator.control("POST", "webhooks", {"paused": False})

    assert third.status_code == 201, third.content
    assert third.json()["order"] not in (first["order"], second["order"])
    sessions = stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url}).v1.checkout.sessions
    assert sessions.retrieve(third.json()["session_id"]).status == "open"
    order_settles(first["order"], OrderStatus.PAID)
    order_settles(second["order"], OrderStatus.PAID)


def test_a_checkout_does_not_wait_out_the_lease_of_a_worker_killed_while_mirroring_its_buyer(shop):
    with broker_unreachable():  # the registration's push is what the killed worker was doing
        grace = users.user_create(email="grace@example.com", password=PASSWORD, name="Grace")
    MirrorRecord.objects.filter(kind=MirrorKind.USER, object_id=grace.pk).update(
        lease_owner=f"task:killed-{uuid.uuid4().hex}", lease_until=timezone.now() + timedelta(minutes=2)
    )
    started = time.monotonic()

    answer = checkout_cart(client_for(grace), [{"price": shop["cup"].pk, "quantity": 1}])

    assert answer.status_code == 201, answer.content
    assert time.monotonic() - started < 9  # waiting out the lease would take two minutes (a 503 after 10 s)
    emulator = shop["emulator"]
    session = stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url}).v1.checkout.sessions.retrieve(
        answer.json()["session_id"]
    )
    assert session.customer == MirrorRecord.objects.get(kind=MirrorKind.USER, object_id=grace.pk).stripe_id != ""


# --- a request never waits for the mirror --------------------------------------------------------------------


def _timed_checkout(client, price):
    started = time.monotonic()
    answer = checkout_cart(client, [{"price": price.pk, "quantity": 1}])
    return answer, time.monotonic() - started


def test_a_product_stripe_will_not_take_yet_is_a_quick_503_then_a_201_once_it_is_in_stripe(shop):
    emulator = shop["emulator"]
    emulator.add_fault(status=429, path_prefix="/v1/products", method="POST")  # every product write
    with transaction.atomic():
        kettle = catalog.product_create(name="Kettle")
        price = catalog.price_create(product=kettle, unit_amount=3000, currency="eur")
    client = client_for(shop["customer"])
    orders_before = Order.objects.count()

    refused = [_timed_checkout(client, price) for _ in range(3)]  # the customer tries again, and again

    for answer, seconds in refused:
        assert answer.status_code == 503, answer.content
        assert int(answer["Retry-After"]) >= 1
        assert seconds < 2
    assert Order.objects.count() == orders_before  # no order left behind, pending or otherwise

    emulator.control("DELETE", "faults")
    answers = []

    def paid_for() -> bool:
        answer, seconds = _timed_checkout(client, price)
        answers.append((answer.status_code, seconds))
        if answer.status_code != 201:
            time.sleep(int(answer["Retry-After"]))  # as the client is told
        return answer.status_code == 201

    wait_until(paid_for, timeout=30, message="a checkout once the product is in Stripe")

    assert all(seconds < 2 for _, seconds in answers), answers
    assert {status for status, _ in answers} <= {201, 503}
    assert Order.objects.count() == orders_before + 1
    assert len(stripe_objects_by_ref(emulator, "products")[f"catalog.product:{kettle.pk}"]) == 1


class TestAnUnansweredStart:
    """Stripe makes the Checkout Session and its answer is lost: the order waits for the client's retry, which
    gets the session back; one no retry comes for is closed by the worker, or recorded if paid meanwhile."""

    def _unanswered(self, shop) -> tuple[object, dict, Order]:
        shop["emulator"].add_fault(
            status=500, count=1, path_prefix="/v1/checkout/sessions", method="POST", phase="after"
        )
        client = client_for(shop["customer"])
        answer = checkout_cart(client, [{"price": shop["teapot"].pk, "quantity": 1}])
        assert (answer.status_code, int(answer["Retry-After"]) >= 1) == (503, True)
        order = Order.objects.get(status=OrderStatus.PENDING, checkout_session_id=None)
        [session] = _stripe(shop).v1.checkout.sessions.list(params={"limit": 100}).data
        return client, session, order

    def test_the_retry_gets_the_same_order_and_the_session_stripe_made(self, shop):
        client, made, order = self._unanswered(shop)

        retried = checkout_cart(client, [{"price": shop["teapot"].pk, "quantity": 1}])

        assert retried.status_code == 201, retried.content
        assert (retried.json()["order"], retried.json()["session_id"]) == (order.pk, made.id)
        assert len(_stripe(shop).v1.checkout.sessions.list(params={"limit": 100}).data) == 1

    def test_an_order_no_retry_came_for_is_closed_with_its_session(self, shop):
        _, made, order = self._unanswered(shop)
        Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(hours=1))

        assert unstarted_orders_close() == 1

        assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELED
        assert _stripe(shop).v1.checkout.sessions.retrieve(made.id).status == "expired"

    def test_a_session_paid_before_the_worker_came_pays_its_order(self, shop):
        _, made, order = self._unanswered(shop)
        shop["emulator"].complete_checkout(made.id, "paid")
        Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(hours=1))

        assert unstarted_orders_close() == 0

        paid = order_settles(order.pk, OrderStatus.PAID)
        assert (paid.checkout_session_id, paid.amount_charged) == (made.id, 4500)
