"""The money path attacked as a payer, a careless operator and a disorderly Stripe would: each case through
the real stack (the API over HTTP, a Celery worker, the Stripe emulator, signed webhooks)."""

import threading
import time
from datetime import timedelta

import pytest
import requests
import stripe
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from apps.catalog import services as catalog
from apps.catalog.models import Product
from apps.mail.models import MessageKind, OutgoingMessage
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.orders.models import IdempotentRequest, Order, OrderStatus
from apps.payments.webhooks.models import WebhookEvent
from apps.payments.webhooks.models import WebhookEventState as EventState
from apps.users import services as users
from apps.users.models import User
from tests.helpers import client_for, project_log
from tests.payments.helpers import (
    PASSWORD,
    URLS,
    checkout_cart,
    checkout_started,
    events_settled,
    order_settles,
    settled,
    wait_until,
    webhooks_quiet,
)
from tests.payments.webhook_signing import body, event, signature
from tests.users.factories import OPERATOR_PERMISSIONS, grant

pytestmark = pytest.mark.integration


def _stripe(emulator) -> stripe.StripeClient:
    return stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url})


def _deliver(live_server, settings, stripe_event: dict) -> int:
    """Deliver an event as Stripe would: signed with the endpoint's secret."""
    payload = body(stripe_event)
    answer = requests.post(
        f"{live_server.url}/stripe/webhook/",
        data=payload,
        headers={"Stripe-Signature": signature(payload, settings.STRIPE_WEBHOOK_SECRETS[0])},
        timeout=10,
    )
    return answer.status_code


def _paid(shop, quantity: int = 2):
    client, started = checkout_started(shop, quantity=quantity)
    shop["emulator"].complete_checkout(started["session_id"], "paid")
    return client, order_settles(started["order"], OrderStatus.PAID)


def _post_at_once(live_server, user, cart: dict, *, copies: int, key: str | None = None) -> list:
    """The same checkout request from `copies` clients released together, over real HTTP."""
    headers = {"Authorization": f"Bearer {AccessToken.for_user(user)}", **({"Idempotency-Key": key} if key else {})}
    barrier, answers = threading.Barrier(copies), []

    def post():
        barrier.wait()
        url = f"{live_server.url}/api/v1/checkout/sessions"
        answers.append(requests.post(url, json=cart, headers=headers, timeout=30))

    threads = [threading.Thread(target=post) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def _link(shop, lines, **headers):
    return client_for(shop["staff"]).post("/api/v1/payment-links", {"lines": lines}, format="json", **headers)


# --- who can name an order ---------------------------------------------------------------------------------


class TestNobodyNamesAnOrder:
    def test_a_link_paid_with_someone_elses_order_as_client_reference_id_pays_only_its_own(self, shop):
        """A payer adds ?client_reference_id=<a 4,999.99 order> to a 12.00 link's URL, and pays the 12.00."""
        _, victim = checkout_started(shop, quantity=5)
        link = _link(shop, [{"price": shop["cup"].pk, "quantity": 1}]).json()

        opened = requests.get(
            f"{link['url']}?client_reference_id={victim['order']}&prefilled_email=eve@example.com",
            allow_redirects=False,
            timeout=5,
        )
        session_id = opened.headers["Location"].rsplit("/", 1)[1]
        shop["emulator"].complete_checkout(session_id, "paid")
        own = wait_until(lambda: Order.objects.filter(checkout_session_id=session_id).first(), message="link order")
        webhooks_quiet(shop["emulator"])

        assert _stripe(shop["emulator"]).v1.checkout.sessions.retrieve(session_id).client_reference_id == str(
            victim["order"]
        )
        assert Order.objects.get(pk=victim["order"]).status == OrderStatus.PENDING
        own.refresh_from_db()
        assert (own.status, own.amount_total, own.email, own.user) == (
            OrderStatus.PAID,
            1200,
            "eve@example.com",
            None,
        )

    def test_a_link_session_naming_an_order_and_left_to_expire_expires_nothing(self, shop):
        _, victim = checkout_started(shop)
        link = _link(shop, [{"price": shop["cup"].pk, "quantity": 1}]).json()
        opened = shop["emulator"].control(
            "POST", f"payment_links/{link['payment_link_id']}/sessions", {"client_reference_id": str(victim["order"])}
        )

        shop["emulator"].control("POST", f"checkout/sessions/{opened['id']}/expire")
        webhooks_quiet(shop["emulator"])

        assert Order.objects.get(pk=victim["order"]).status == OrderStatus.PENDING
        assert not Order.objects.filter(checkout_session_id=opened["id"]).exists()
        expired = WebhookEvent.objects.get(type="checkout.session.expired")
        assert expired.outcome == "ignored: no order of ours for this session"

    def test_a_session_made_elsewhere_naming_an_order_in_its_metadata_pays_nothing(self, shop):
        """Someone with the dashboard (or another installation) makes a 1.00 session carrying our order's id."""
        _, victim = checkout_started(shop)
        product_id = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=shop["cup"].product_id).stripe_id
        forged = _stripe(shop["emulator"]).v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "line_items": [
                    {"price_data": {"currency": "eur", "unit_amount": 100, "product": product_id}, "quantity": 1}
                ],
                "success_url": "https://shop.example/thanks",
                "client_reference_id": str(victim["order"]),
                "metadata": {"order": str(victim["order"])},
                "payment_intent_data": {"metadata": {"order": str(victim["order"])}},
            }
        )

        shop["emulator"].complete_checkout(forged.id, "declined")
        shop["emulator"].complete_checkout(forged.id, "paid")
        webhooks_quiet(shop["emulator"])

        assert Order.objects.get(pk=victim["order"]).status == OrderStatus.PENDING
        assert Order.objects.count() == 1

    def test_a_session_of_a_link_made_elsewhere_makes_no_order(self, shop):
        """A link made in the dashboard, or by another installation on the account, is not ours to fulfil."""
        price_id = MirrorRecord.objects.get(kind=MirrorKind.PRICE, object_id=shop["cup"].pk).stripe_id
        foreign = _stripe(shop["emulator"]).v1.payment_links.create(
            params={"line_items": [{"price": price_id, "quantity": 1}], "metadata": {"order": "1"}}
        )

        opened = shop["emulator"].control("POST", f"payment_links/{foreign.id}/sessions")
        shop["emulator"].complete_checkout(opened["id"], "paid", email="ada@example.com")
        webhooks_quiet(shop["emulator"])

        assert not Order.objects.exists()


# --- amounts are checked, not trusted ---------------------------------------------------------------------


class TestAmountsAreChecked:
    def test_an_order_is_paid_only_when_stripe_took_exactly_its_total(self, shop, live_server, settings):
        """A link made at 45.00, then the teapot goes to 50.00: a payment of 45.00 is not the order's 50.00."""
        mail_before = OutgoingMessage.objects.filter(kind=MessageKind.RECEIPT).count()
        link = _link(shop, [{"price": shop["teapot"].pk, "quantity": 1}]).json()
        catalog.price_update(price=shop["teapot"], data={"unit_amount": 5000})
        wait_until(settled, message="the new price in Stripe")
        opened = shop["emulator"].control("POST", f"payment_links/{link['payment_link_id']}/sessions")

        shop["emulator"].complete_checkout(opened["id"], "paid", email="guest@example.com")
        order = wait_until(
            lambda: Order.objects.filter(checkout_session_id=opened["id"], status=OrderStatus.REVIEW).first(),
            message="the link order in review",
        )
        webhooks_quiet(shop["emulator"])

        assert (order.amount_total, order.amount_charged, order.currency_charged) == (5000, 4500, "eur")
        assert OutgoingMessage.objects.filter(kind=MessageKind.RECEIPT).count() == mail_before
        staff = client_for(shop["staff"])
        assert staff.get("/api/v1/payments/stats").json()["in_review"] == 1
        assert staff.get(f"/api/v1/orders/{order.pk}").json()["status"] == "review"
        # The operator refunds what Stripe took, not what the order says.
        refund = staff.post(f"/api/v1/orders/{order.pk}/refunds", {}, format="json")
        webhooks_quiet(shop["emulator"])
        assert (refund.status_code, refund.json()["amount"]) == (201, 4500)
        assert Order.objects.get(pk=order.pk).status == OrderStatus.REFUNDED

    def test_a_completed_session_in_another_currency_parks_the_order(self, shop, live_server, settings):
        _, started = checkout_started(shop)
        session = _stripe(shop["emulator"]).v1.checkout.sessions.retrieve(started["session_id"]).to_dict()
        forged = {
            **session,
            "status": "complete",
            "payment_status": "paid",
            "currency": "usd",
            "payment_intent": "pi_x",
        }

        assert _deliver(live_server, settings, event("checkout.session.completed", forged, event_id="evt_usd")) == 200
        order = order_settles(started["order"], OrderStatus.REVIEW)

        assert (order.amount_charged, order.currency_charged, order.currency) == (10200, "usd", "eur")
        assert not OutgoingMessage.objects.filter(kind=MessageKind.RECEIPT).exists()

    def test_money_taken_for_a_canceled_order_reaches_an_operator(self, shop, live_server, settings):
        client, started = checkout_started(shop)
        session = _stripe(shop["emulator"]).v1.checkout.sessions.retrieve(started["session_id"]).to_dict()
        assert client.post(f"/api/v1/orders/{started['order']}/cancel").json()["status"] == "canceled"
        paid_anyway = {**session, "status": "complete", "payment_status": "paid", "payment_intent": "pi_late"}

        _deliver(live_server, settings, event("checkout.session.completed", paid_anyway, event_id="evt_late_pay"))

        order = order_settles(started["order"], OrderStatus.REVIEW)
        assert (order.amount_charged, order.payment_intent_id) == (10200, "pi_late")
        assert not OutgoingMessage.objects.filter(kind=MessageKind.RECEIPT).exists()

    def test_an_operator_accepts_a_payment_in_review_and_the_receipt_goes(self, shop, live_server, settings, client):
        _, started = checkout_started(shop)
        session = _stripe(shop["emulator"]).v1.checkout.sessions.retrieve(started["session_id"]).to_dict()
        short = {**session, "status": "complete", "payment_status": "paid", "amount_total": 10000, "payment_intent": ""}
        _deliver(live_server, settings, event("checkout.session.completed", short, event_id="evt_short"))
        order_settles(started["order"], OrderStatus.REVIEW)
        _, fine = checkout_started(shop, quantity=1)  # an order not in review, which the filter leaves out
        operator = users.user_create(email="op@example.com", password=PASSWORD, is_staff=True, is_superuser=True)
        client.force_login(operator)

        listing = client.get("/admin/payments/order/", {"review": "yes"})
        everything = client.get("/admin/payments/order/")
        client.post("/admin/payments/order/", {"action": "accept_payment", "_selected_action": [started["order"]]})

        assert f">{started['order']}<" in listing.content.decode()
        assert f">{fine['order']}<" not in listing.content.decode()
        assert f">{fine['order']}<" in everything.content.decode()
        order = Order.objects.get(pk=started["order"])
        assert (order.status, order.amount_charged) == (OrderStatus.PAID, 10000)
        assert OutgoingMessage.objects.filter(kind=MessageKind.RECEIPT).count() == 1

    def test_a_checkout_in_the_second_after_a_price_change_charges_the_new_price(self, shop):
        emulator = shop["emulator"]
        # The mirror of the new price fails: Stripe never gets it, yet the session must not charge the old one.
        emulator.add_fault(status=400, message="Prices are frozen today", path_prefix="/v1/prices", method="POST")

        catalog.price_update(price=shop["teapot"], data={"unit_amount": 4999})
        answer = checkout_cart(client_for(shop["customer"]), [{"price": shop["teapot"].pk, "quantity": 2}])

        assert answer.status_code == 201, answer.content
        session = _stripe(emulator).v1.checkout.sessions.retrieve(answer.json()["session_id"])
        items = _stripe(emulator).v1.checkout.sessions.line_items.list(session.id).data
        order = Order.objects.get(pk=answer.json()["order"])
        assert (session.amount_total, session.currency) == (order.amount_total, order.currency) == (9998, "eur")
        assert [(item.price.unit_amount, item.quantity) for item in items] == [(4999, 2)]
        emulator.complete_checkout(session.id, "paid")
        order_settles(order.pk, OrderStatus.PAID)

    def test_a_payment_link_is_refused_while_stripe_refuses_the_current_price(self, shop):
        shop["emulator"].add_fault(
            status=400, message="Prices are frozen today", path_prefix="/v1/prices", method="POST"
        )
        catalog.price_update(price=shop["teapot"], data={"unit_amount": 4999})
        record = MirrorRecord.objects.filter(kind=MirrorKind.PRICE, object_id=shop["teapot"].pk)
        wait_until(lambda: record.filter(state=MirrorState.FAILED).exists(), message="Stripe to refuse the price")

        answer = _link(shop, [{"price": shop["teapot"].pk, "quantity": 1}])

        assert answer.status_code == 409
        assert "does not hold the current price of Teapot" in answer.json()["detail"]
        assert not shop["emulator"].requests_seen(method="POST", path_prefix="/v1/payment_links")

    def test_a_payment_link_does_not_wait_for_the_worker_pushing_its_price(self, shop):
        """The worker holds the price's lease while Stripe is slow to answer: the request is told to come back
        (at once, not after the worker), and makes the link once Stripe holds the price."""
        shop["emulator"].add_fault(latency_ms=3000, count=1, path_prefix="/v1/prices", method="POST")
        catalog.price_update(price=shop["teapot"], data={"unit_amount": 4999})
        record = MirrorRecord.objects.filter(kind=MirrorKind.PRICE, object_id=shop["teapot"].pk)
        wait_until(lambda: record.exclude(lease_owner="").exists(), message="the worker to take the lease")

        started = time.monotonic()
        behind = _link(shop, [{"price": shop["teapot"].pk, "quantity": 1}])
        answered_in = time.monotonic() - started
        wait_until(settled, message="the worker to push the price")
        made = _link(shop, [{"price": shop["teapot"].pk, "quantity": 1}])

        assert (behind.status_code, answered_in < 2, int(behind["Retry-After"]) >= 1) == (503, True, True)
        assert made.status_code == 201, made.content
        link = _stripe(shop["emulator"]).v1.payment_links.line_items.list(made.json()["payment_link_id"]).data
        assert [item.price.unit_amount for item in link] == [4999]

    @pytest.mark.parametrize(
        ("unit_amount", "quantity"),
        [(99_999_999, 2), (99_999_999, 999), (50_000_000, 2)],
        ids=["two-at-the-ceiling", "overflows-32-bits", "just-above"],
    )
    def test_a_total_stripe_cannot_take_is_a_400_before_any_stripe_call(self, shop, unit_amount, quantity):
        with transaction.atomic():
            dear = catalog.price_create(product=shop["teapot"].product, unit_amount=unit_amount, currency="eur")
        wait_until(settled)
        calls_before = len(shop["emulator"].requests_seen())

        answer = checkout_cart(client_for(shop["customer"]), [{"price": dear.pk, "quantity": quantity}])
        link = _link(shop, [{"price": dear.pk, "quantity": quantity}])

        assert answer.status_code == link.status_code == 400
        assert "at most 99999999" in str(answer.json()["lines"])
        assert not Order.objects.exists()
        assert len(shop["emulator"].requests_seen()) == calls_before

    def test_stripe_refusing_a_checkout_is_a_502_and_no_order_is_left_pending(self, shop, settings):
        shop["emulator"].add_fault(status=400, message="No such customer: cus_internal", path_prefix="/v1/checkout/")

        with project_log() as log:
            answer = checkout_cart(client_for(shop["customer"]), [{"price": shop["teapot"].pk, "quantity": 1}])

        assert answer.status_code == 502
        # Stripe's words stay in our log, under the request id the client can quote.
        assert answer.json() == {
            "detail": "The payment provider refused the request; nothing was changed.",
            "request_id": answer["X-Request-ID"],
        }
        assert any(
            f"request_id={answer['X-Request-ID']}" in line and "No such customer: cus_internal" in line
            for line in log.getvalue().splitlines()
        )
        assert Order.objects.get().status == OrderStatus.CANCELED

    def test_stripe_refusing_a_refund_or_a_cancel_is_a_502_and_changes_nothing(self, shop):
        client, order = _paid(shop)
        _, pending = checkout_started(shop, quantity=3)
        shop["emulator"].add_fault(status=400, message="Charge already disputed", path_prefix="/v1/refunds")
        shop["emulator"].add_fault(
            status=400, message="Session locked", path_prefix="/v1/checkout/sessions/", method="POST"
        )

        refund = client_for(shop["staff"]).post(f"/api/v1/orders/{order.pk}/refunds", {"amount": 100}, format="json")
        cancel_paid = client.post(f"/api/v1/orders/{order.pk}/cancel")
        cancel_pending = client.post(f"/api/v1/orders/{pending['order']}/cancel")

        assert [refund.status_code, cancel_paid.status_code, cancel_pending.status_code] == [502, 502, 502]
        for answer in (refund, cancel_paid, cancel_pending):
            assert answer.json()["detail"] == "The payment provider refused the request; nothing was changed."
            assert answer.json()["request_id"] == answer["X-Request-ID"]
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
        assert Order.objects.get(pk=pending["order"]).status == OrderStatus.PENDING

    def test_an_event_of_the_other_mode_is_stored_and_refused(self, shop, live_server, settings):
        _, started = checkout_started(shop)
        session = _stripe(shop["emulator"]).v1.checkout.sessions.retrieve(started["session_id"]).to_dict()
        paid = {**session, "status": "complete", "payment_status": "paid", "livemode": True}
        live = {**event("checkout.session.completed", paid, event_id="evt_live"), "livemode": True}

        assert _deliver(live_server, settings, live) == 200
        stored = wait_until(
            lambda: WebhookEvent.objects.filter(stripe_id="evt_live").exclude(state=EventState.RECEIVED).first()
        )

        assert stored.state == EventState.REFUSED
        assert stored.outcome == "refused: a live-mode event, but this installation uses a test-mode key"
        assert Order.objects.get(pk=started["order"]).status == OrderStatus.PENDING


# --- nothing about money is lost ---------------------------------------------------------------------------------


def test_a_refund_that_arrives_before_its_payment_waits_and_is_then_applied(shop, live_server, settings):
    """Stripe sends events in no order: here the refund's events come before the payment's."""
    emulator = shop["emulator"]
    _, started = checkout_started(shop)
    emulator.control("POST", "webhooks", {"paused": True})
    emulator.complete_checkout(started["session_id"], "paid")
    intent = _stripe(emulator).v1.checkout.sessions.retrieve(started["session_id"]).payment_intent
    _stripe(emulator).v1.refunds.create(params={"payment_intent": intent, "amount": 1200})
    stripe_events = _stripe(emulator).v1.events.list(params={"limit": 100}).data
    by_type = {e.type: e.to_dict() for e in stripe_events}

    for early in ("refund.created", "charge.refunded"):
        assert _deliver(live_server, settings, by_type[early]) == 200
    waiting = wait_until(
        lambda: WebhookEvent.objects.filter(type="refund.created", attempts__gte=2).first(), message="retries"
    )
    assert waiting.state == EventState.RECEIVED
    assert waiting.outcome.startswith("waiting:")
    assert Order.objects.get(pk=started["order"]).status == OrderStatus.PENDING
    _deliver(live_server, settings, by_type["checkout.session.completed"])

    order = order_settles(started["order"], OrderStatus.PARTIALLY_REFUNDED)
    wait_until(events_settled, message="every event processed")
    assert (order.amount_charged, order.amount_refunded) == (10200, 1200)
    assert order.refunds.count() == 1
    assert list(order.transitions.values_list("to_status", flat=True)) == ["paid", "partially_refunded"]


def test_a_link_order_belongs_to_a_user_only_once_they_verified_the_address(shop):
    emulator = shop["emulator"]
    link = _link(shop, [{"price": shop["cup"].pk, "quantity": 1}]).json()
    claimant = users.user_create(email="grace@example.com", password=PASSWORD)

    def pay_as(email: str) -> Order:
        opened = emulator.control("POST", f"payment_links/{link['payment_link_id']}/sessions")
        emulator.complete_checkout(opened["id"], "paid", email=email)
        return wait_until(
            lambda: Order.objects.filter(checkout_session_id=opened["id"], status=OrderStatus.PAID).first()
        )

    before = pay_as("grace@example.com")  # anyone can type Grace's address
    users.user_verify_email(token=users.email_verification_token(user=claimant))
    after = pay_as("grace@example.com")
    webhooks_quiet(emulator)

    assert before.user is None
    assert after.user == claimant
    assert [o["id"] for o in client_for(claimant).get("/api/v1/orders").json()["results"]] == [after.pk]


def test_a_link_order_belongs_to_the_user_of_our_stripe_customer_and_an_unknown_customer_pays_as_a_guest(
    shop, live_server, settings
):
    """Stripe names the customer who paid a link (a returning customer, or one the link created): ours is
    a user of ours whatever address was typed; a customer we never mirrored makes a guest order."""
    emulator = shop["emulator"]
    link = _link(shop, [{"price": shop["cup"].pk, "quantity": 1}]).json()
    ours = MirrorRecord.objects.get(kind=MirrorKind.USER, object_id=shop["customer"].pk).stripe_id

    def paid_by(customer: str, email: str, event_id: str) -> Order:
        opened = emulator.control("POST", f"payment_links/{link['payment_link_id']}/sessions")
        session = _stripe(emulator).v1.checkout.sessions.retrieve(opened["id"]).to_dict()
        completed = {
            **session,
            "status": "complete",
            "payment_status": "paid",
            "customer": customer,
            "customer_details": {"email": email},
            "payment_intent": f"pi_{event_id}",
        }
        assert _deliver(live_server, settings, event("checkout.session.completed", completed, event_id=event_id)) == 200
        return wait_until(
            lambda: Order.objects.filter(checkout_session_id=opened["id"], status=OrderStatus.PAID).first(),
            message="the link order paid",
        )

    by_our_customer = paid_by(ours, "typed-anything@example.com", "evt_ours")
    by_a_stranger = paid_by("cus_neverMirroredHere", "typed-anything@example.com", "evt_stranger")

    assert (by_our_customer.user, by_our_customer.amount_total) == (shop["customer"], 1200)
    assert (by_a_stranger.user, by_a_stranger.email) == (None, "typed-anything@example.com")
    mine = client_for(shop["customer"]).get("/api/v1/orders").json()["results"]
    assert [o["id"] for o in mine] == [by_our_customer.pk]


# --- who may move money -------------------------------------------------------------------------------------------


class TestWhoMayMoveMoney:
    def test_an_owner_cancels_a_paid_order_only_within_the_self_refund_window(self, shop, settings):
        client, order = _paid(shop)
        Order.objects.filter(pk=order.pk).update(paid_at=timezone.now() - timedelta(days=15))

        late = client.post(f"/api/v1/orders/{order.pk}/cancel")
        by_staff = client_for(shop["staff"]).post(f"/api/v1/orders/{order.pk}/cancel")
        webhooks_quiet(shop["emulator"])

        assert late.status_code == 409
        assert "more than 14 days ago" in late.json()["detail"]
        assert by_staff.json()["status"] == "refunded"

    def test_with_self_refunds_off_only_staff_refund(self, shop, settings):
        settings.ORDER_SELF_REFUND_DAYS = 0
        client, order = _paid(shop)

        answer = client.post(f"/api/v1/orders/{order.pk}/cancel")

        assert answer.status_code == 409
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
        assert not shop["emulator"].requests_seen(method="POST", path_prefix="/v1/refunds")

    def test_an_idempotency_key_gives_back_the_same_order_and_session(self, shop):
        client = client_for(shop["customer"])
        cart = [{"price": shop["teapot"].pk, "quantity": 1}]

        first = checkout_cart(client, cart, key="cart-7")
        again = checkout_cart(client, cart, key="cart-7")
        other_cart = checkout_cart(client, [{"price": shop["cup"].pk, "quantity": 1}], key="cart-7")
        someone_else = checkout_cart(client_for(shop["staff"]), cart, key="cart-7")

        assert (first.status_code, again.status_code, again["Idempotent-Replayed"]) == (201, 201, "true")
        assert again.json() == first.json()
        assert other_cart.status_code == 409
        assert "another request" in other_cart.json()["detail"]
        assert someone_else.json()["order"] != first.json()["order"]  # a key belongs to its user
        assert Order.objects.count() == 2

    def test_an_idempotency_key_answers_the_same_for_24_hours(self, shop):
        client = client_for(shop["customer"])
        cart = [{"price": shop["teapot"].pk, "quantity": 1}]
        first = checkout_cart(client, cart, key="day-key")

        IdempotentRequest.objects.update(created_at=timezone.now() - timedelta(hours=23))
        a_day_later = checkout_cart(client, cart, key="day-key")
        IdempotentRequest.objects.update(created_at=timezone.now() - timedelta(hours=25))
        past_the_day = checkout_cart(client, [{"price": shop["cup"].pk, "quantity": 1}], key="day-key")

        assert (a_day_later.status_code, a_day_later["Idempotent-Replayed"]) == (201, "true")
        assert a_day_later.json() == first.json()
        # After 24 hours the key is free again: another cart under it is a new order, not a 409.
        assert past_the_day.status_code == 201, past_the_day.content
        assert "Idempotent-Replayed" not in past_the_day
        assert past_the_day.json()["order"] != first.json()["order"]
        assert Order.objects.count() == 2

    def test_an_idempotency_key_gives_back_the_same_payment_link(self, shop):
        teapot, cup = [{"price": shop["teapot"].pk, "quantity": 1}], [{"price": shop["cup"].pk, "quantity": 1}]

        first = _link(shop, teapot, HTTP_IDEMPOTENCY_KEY="link-1")
        again = _link(shop, teapot, HTTP_IDEMPOTENCY_KEY="link-1")
        other = _link(shop, cup, HTTP_IDEMPOTENCY_KEY="link-1")
        unkeyed = _link(shop, teapot)

        assert (first.status_code, again.json(), other.status_code) == (201, first.json(), 409)
        assert unkeyed.json()["payment_link_id"] != first.json()["payment_link_id"]
        made = shop["emulator"].requests_seen(method="POST", path_prefix="/v1/payment_links")
        assert len([r for r in made if r["status"] == 200]) == 2

    def test_the_same_key_racing_itself_makes_one_order(self, shop, live_server):
        cart = {"lines": [{"price": shop["teapot"].pk, "quantity": 1}], **URLS}

        answers = _post_at_once(live_server, shop["customer"], cart, copies=4, key="race")

        created = [a.json() for a in answers if a.status_code == 201]
        assert sorted(a.status_code for a in answers)[0] == 201
        assert all(a.status_code in (201, 409) for a in answers)
        assert len({body["session_id"] for body in created}) == 1
        assert Order.objects.count() == 1

    def test_the_same_cart_within_five_minutes_gets_the_same_open_session(self, shop, live_server):
        cart = {"lines": [{"price": shop["cup"].pk, "quantity": 2}], **URLS}

        answers = _post_at_once(live_server, shop["customer"], cart, copies=3)
        Order.objects.update(created_at=timezone.now() - timedelta(minutes=6))
        later = checkout_cart(client_for(shop["customer"]), cart["lines"])

        assert [a.status_code for a in answers] == [201, 201, 201]
        assert len({a.json()["session_id"] for a in answers}) == 1
        assert later.json()["order"] != answers[0].json()["order"]
        assert Order.objects.count() == 2
        sessions = shop["emulator"].requests_seen(method="POST", path_prefix="/v1/checkout/sessions")
        assert len({r["idempotency_key"] for r in sessions if r["status"] == 200}) == 2

    def test_the_same_cart_sent_three_times_at_once_right_after_paying_makes_one_new_order(self, shop, live_server):
        cart = {"lines": [{"price": shop["cup"].pk, "quantity": 2}], **URLS}
        first = _post_at_once(live_server, shop["customer"], cart, copies=1)[0].json()
        shop["emulator"].control("POST", "webhooks", {"paused": True})  # the payment's event is late
        shop["emulator"].complete_checkout(first["session_id"], "paid")

        answers = _post_at_once(live_server, shop["customer"], cart, copies=3)
        shop["emulator"].control("POST", "webhooks", {"paused": False})

        assert [a.status_code for a in answers] == [201, 201, 201]
        assert len({(a.json()["order"], a.json()["session_id"]) for a in answers}) == 1
        assert answers[0].json()["order"] != first["order"]
        assert Order.objects.count() == 2

    def test_a_refund_key_is_bound_to_its_user_and_amount(self, shop):
        _, order = _paid(shop, quantity=3)
        staff = client_for(shop["staff"])
        url = f"/api/v1/orders/{order.pk}/refunds"

        first = staff.post(url, {"amount": 1000}, format="json", HTTP_IDEMPOTENCY_KEY="r-1")
        replay = staff.post(url, {"amount": 1000}, format="json", HTTP_IDEMPOTENCY_KEY="r-1")
        other_amount = staff.post(url, {"amount": 2000}, format="json", HTTP_IDEMPOTENCY_KEY="r-1")
        second = staff.post(url, {"amount": 1000}, format="json", HTTP_IDEMPOTENCY_KEY="r-2")
        # Another operator who happens to pick the same key and amount asks for a refund of their own.
        colleague = grant(
            users.user_create(email="colleague@example.com", password=PASSWORD, is_staff=True), *OPERATOR_PERMISSIONS
        )
        by_colleague = client_for(colleague).post(url, {"amount": 1000}, format="json", HTTP_IDEMPOTENCY_KEY="r-1")
        webhooks_quiet(shop["emulator"])

        assert replay.json()["stripe_refund_id"] == first.json()["stripe_refund_id"]
        assert other_amount.status_code == 409
        assert second.status_code == 201
        assert second.json()["stripe_refund_id"] != first.json()["stripe_refund_id"]
        assert by_colleague.status_code == 201, by_colleague.content
        assert "Idempotent-Replayed" not in by_colleague
        assert by_colleague.json()["stripe_refund_id"] not in {
            first.json()["stripe_refund_id"],
            second.json()["stripe_refund_id"],
        }
        order.refresh_from_db()
        assert (order.amount_refunded, order.refunds.count()) == (3000, 3)
        assert order.refunds.get(stripe_refund_id=by_colleague.json()["stripe_refund_id"]).created_by == colleague


# --- two databases, one Stripe account ---------------------------------------------------------------------------


def test_events_about_another_installations_objects_change_nothing_here(webhooks, live_server, settings):
    with transaction.atomic():
        product = catalog.product_create(name="Teapot")
    wait_until(settled)
    # The other installation's product 'catalog.product:<same id>' is renamed in the shared account.
    theirs = _stripe(webhooks).v1.products.create(
        params={"name": "Their teapot", "metadata": {"app_ref": f"catalog.product:{product.pk}", "app_namespace": "b"}}
    )
    _stripe(webhooks).v1.products.update(theirs.id, params={"name": "Their teapot, renamed"})
    _stripe(webhooks).v1.prices.create(params={"product": theirs.id, "unit_amount": 100, "currency": "eur"})
    webhooks_quiet(webhooks)

    product.refresh_from_db()
    assert product.name == "Teapot"
    assert Product.objects.count() == 1
    outcomes = set(
        WebhookEvent.objects.filter(type__in=["product.updated", "product.created"]).values_list("outcome", flat=True)
    )
    assert "ignored: it mirrors a row of another installation" in outcomes


def test_an_object_mirrored_before_namespaces_gets_ours_on_its_next_push(mirror):
    with transaction.atomic():
        product = catalog.product_create(name="Teapot")
    wait_until(settled)
    record = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=product.pk)
    _stripe(mirror).v1.products.update(record.stripe_id, params={"metadata": {"app_namespace": ""}})  # as of old

    catalog.product_update(product=product, data={"name": "Teapot (large)"})
    wait_until(settled)

    stripe_product = _stripe(mirror).v1.products.retrieve(record.stripe_id)
    assert (stripe_product.name, stripe_product.metadata.app_namespace) == ("Teapot (large)", "testsuite")
    assert MirrorRecord.objects.get(pk=record.pk).state == MirrorState.SYNCED
    assert len(_stripe(mirror).v1.products.list().data) == 1


def test_existing_rows_are_carried_over_by_the_data_migration(db):
    """What 0005 does to a database from before: paid orders took their total, links are known, a namespace."""
    import importlib

    from django.apps import apps as registry
    from django.db import connection

    from apps.payments.gateway.models import Installation
    from apps.payments.orders.models import PaymentLink

    migration = importlib.import_module("apps.payments.migrations.0005_money_path")
    customer = User.objects.create_user("old@example.com", PASSWORD)
    with transaction.atomic():
        price = catalog.price_create(product=catalog.product_create(name="Old"), unit_amount=700, currency="usd")
    from apps.payments.orders.lifecycle import CartLine, order_create

    paid = order_create(user=customer, lines=[CartLine(price=price, quantity=2)], payment_link_id="plink_1")
    Order.objects.filter(pk=paid.pk).update(status=OrderStatus.PAID, amount_charged=0, currency_charged="")
    Installation.objects.all().delete()

    with connection.schema_editor() as editor:
        migration.forwards(registry, editor)

    paid.refresh_from_db()
    assert (paid.amount_charged, paid.currency_charged) == (1400, "usd")
    assert PaymentLink.objects.get(stripe_id="plink_1").lines == [{"price": price.pk, "quantity": 2}]
    assert len(Installation.objects.get().namespace) == 12
