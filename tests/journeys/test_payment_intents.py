"""An app pays: our API makes the order and its Payment Intent, the app confirms it with the client secret and
the publishable key through the official SDK, and Stripe's events move the order and its payment. Each case
through the real stack (HTTP, a Celery worker, the Stripe emulator, signed webhooks)."""

import json
import threading
from datetime import timedelta

import pytest
import requests
import stripe
from django.db import transaction
from djstripe import models as djstripe_models
from rest_framework_simplejwt.tokens import AccessToken

from apps.catalog import services as catalog
from apps.mail.models import MessageKind, OutgoingMessage
from apps.payments.orders.models import IdempotentRequest, Order, OrderStatus, Payment, PaymentStatus
from apps.payments.webhooks.models import WebhookEvent
from apps.users import services as users
from tests.helpers import client_for
from tests.payments.helpers import PASSWORD, order_settles, settled, wait_until, webhooks_quiet
from tests.payments.webhook_signing import body, event, signature

pytestmark = pytest.mark.integration

INTENTS = "/api/v1/payment-intents"


def _secret_client(emulator) -> stripe.StripeClient:
    return stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url}, max_network_retries=0)


def _app(started: dict, emulator) -> stripe.StripeClient:
    """What the app holds: the publishable key our API gave it, and nothing secret."""
    return stripe.StripeClient(started["publishable_key"], base_addresses={"api": emulator.url}, max_network_retries=0)


def _confirm(started: dict, emulator, card: str, **params):
    return _app(started, emulator).v1.payment_intents.confirm(
        started["payment_intent"],
        params={"client_secret": started["client_secret"], "payment_method": card, **params},
    )


def _started(shop, quantity: int = 1, client=None, **headers) -> dict:
    client = client or client_for(shop["customer"])
    answer = client.post(
        INTENTS, {"lines": [{"price": shop["teapot"].pk, "quantity": quantity}]}, format="json", **headers
    )
    assert answer.status_code == 201, answer.content
    return answer.json()


def _payment(order_id: int, status: str) -> Payment:
    return wait_until(
        lambda: Payment.objects.filter(order_id=order_id, status=status).first(), message=f"payment {status}"
    )


def _deliver(live_server, settings, stripe_event: dict) -> int:
    payload = body(stripe_event)
    return requests.post(
        f"{live_server.url}/stripe/webhook/",
        data=payload,
        headers={"Stripe-Signature": signature(payload, settings.STRIPE_WEBHOOK_SECRETS[0])},
        timeout=10,
    ).status_code


class TestTheAppJourney:
    def test_an_app_pays_with_the_sdk_and_sees_the_order_paid_and_the_payment_listed(self, shop):
        receipts = OutgoingMessage.objects.filter(kind=MessageKind.RECEIPT).count()
        started = _started(shop, quantity=2)

        assert started["amount"] == 9000
        assert started["currency"] == "eur"
        assert started["status"] == "pending"
        assert started["publishable_key"].startswith("pk_test_")
        assert started["client_secret"].startswith(f"{started['payment_intent']}_secret_")
        intent = _secret_client(shop["emulator"]).v1.payment_intents.retrieve(started["payment_intent"])
        assert (intent.amount, intent.currency, intent.metadata["order"]) == (9000, "eur", str(started["order"]))

        paid = _confirm(started, shop["emulator"], "pm_card_visa")

        assert paid.status == "succeeded"
        order = order_settles(started["order"], OrderStatus.PAID)
        assert (order.amount_charged, order.currency_charged, order.payment_intent_id) == (
            9000,
            "eur",
            started["payment_intent"],
        )
        payment = wait_until(
            lambda: Payment.objects.filter(order=order, card_last4="4242").first(), message="the card of the payment"
        )
        assert (payment.status, payment.card_brand, payment.amount) == (PaymentStatus.SUCCEEDED, "visa", 9000)
        webhooks_quiet(shop["emulator"])
        assert OutgoingMessage.objects.filter(kind=MessageKind.RECEIPT).count() == receipts + 1
        client = client_for(shop["customer"])
        listed = client.get("/api/v1/payments").json()["results"]
        assert [(p["order"], p["status"], p["card_brand"], p["card_last4"], p["paid_through"]) for p in listed] == [
            (order.pk, "succeeded", "visa", "4242", "app")
        ]
        detail = client.get(f"/api/v1/orders/{order.pk}").json()
        assert [p["payment_intent"] for p in detail["payments"]] == [started["payment_intent"]]
        assert [(t["from_status"], t["to_status"]) for t in detail["transitions"]] == [("pending", "paid")]
        assert client.get(f"/api/v1/payments/{payment.pk}").json()["amount"] == 9000
        # Stripe's events carry the client secret; what is stored of them does not.
        stored = djstripe_models.Event.objects.filter(type__startswith="payment_intent.")
        assert stored.exists()
        assert all(started["client_secret"] not in json.dumps(event.data) for event in stored)

    @pytest.mark.parametrize(
        ("card", "decline_code", "message"),
        [
            ("pm_card_chargeDeclined", "generic_decline", "Your card was declined."),
            ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", "Your card has insufficient funds."),
        ],
    )
    def test_a_declined_card_shows_its_decline_code_and_another_card_still_pays(
        self, shop, card, decline_code, message
    ):
        started = _started(shop)

        with pytest.raises(stripe.CardError):
            _confirm(started, shop["emulator"], card)

        order_settles(started["order"], OrderStatus.FAILED)
        failed = _payment(started["order"], PaymentStatus.FAILED)
        assert (failed.failure_code, failed.decline_code, failed.failure_message) == (
            "card_declined",
            decline_code,
            message,
        )
        assert failed.card_brand == "visa"
        shown = client_for(shop["customer"]).get(f"/api/v1/payments/{failed.pk}").json()
        assert (shown["status"], shown["decline_code"]) == ("failed", decline_code)

        _confirm(started, shop["emulator"], "pm_card_mastercard")

        order_settles(started["order"], OrderStatus.PAID)
        paid = _payment(started["order"], PaymentStatus.SUCCEEDED)
        assert paid.pk == failed.pk  # one intent, one payment: the decline stays on record
        assert paid.decline_code == decline_code
        wait_until(lambda: Payment.objects.filter(pk=paid.pk, card_brand="mastercard").exists(), message="the card")

    def test_a_card_asking_for_3d_secure_leaves_the_order_pending_until_the_customer_passes_it(self, shop):
        started = _started(shop)

        waiting = _confirm(
            started, shop["emulator"], "pm_card_authenticationRequired", return_url="https://shop.example/"
        )

        assert waiting.status == "requires_action"
        wait_until(
            lambda: Payment.objects.filter(order_id=started["order"], stripe_status="requires_action").exists(),
            message="the payment waiting for 3D Secure",
        )
        webhooks_quiet(shop["emulator"])
        assert Order.objects.get(pk=started["order"]).status == OrderStatus.PENDING
        assert Payment.objects.get(order_id=started["order"]).status == PaymentStatus.PENDING

        shop["emulator"].control(
            "POST", f"payment_intents/{started['payment_intent']}/authenticate", {"outcome": "complete"}
        )

        order_settles(started["order"], OrderStatus.PAID)
        webhooks_quiet(shop["emulator"])  # the card comes with charge.succeeded, which may follow the intent's event
        assert _payment(started["order"], PaymentStatus.SUCCEEDED).card_last4 == "3184"

    def test_a_processing_payment_is_shown_as_processing(self, shop, live_server, settings):
        started = _started(shop)
        intent = _secret_client(shop["emulator"]).v1.payment_intents.retrieve(started["payment_intent"]).to_dict()

        assert (
            _deliver(live_server, settings, event("payment_intent.processing", {**intent, "status": "processing"}))
            == 200
        )

        _payment(started["order"], PaymentStatus.PROCESSING)
        assert Order.objects.get(pk=started["order"]).status == OrderStatus.PENDING

    def test_a_zero_decimal_currency_is_charged_in_whole_units(self, shop):
        with transaction.atomic():
            kettle = catalog.product_create(name="Kettle")
            yen = catalog.price_create(product=kettle, unit_amount=4500, currency="jpy")
        wait_until(settled, message="the kettle in Stripe")
        answer = client_for(shop["customer"]).post(
            INTENTS, {"lines": [{"price": yen.pk, "quantity": 3}]}, format="json"
        )
        started = answer.json()

        assert (started["amount"], started["currency"]) == (13500, "jpy")
        _confirm(started, shop["emulator"], "pm_card_visa")
        order = order_settles(started["order"], OrderStatus.PAID)
        assert (order.amount_charged, order.currency_charged) == (13500, "jpy")


class TestTheSameCartTwice:
    def test_the_same_cart_within_five_minutes_gets_the_same_intent(self, shop):
        first = _started(shop)
        again = _started(shop)
        other = _started(shop, quantity=2)

        assert (again["order"], again["payment_intent"], again["client_secret"]) == (
            first["order"],
            first["payment_intent"],
            first["client_secret"],
        )
        assert other["payment_intent"] != first["payment_intent"]
        assert Order.objects.count() == 2

    def test_after_five_minutes_the_same_cart_is_a_new_order(self, shop):
        first = _started(shop)
        Order.objects.filter(pk=first["order"]).update(
            created_at=Order.objects.get(pk=first["order"]).created_at - timedelta(minutes=6)
        )

        assert _started(shop)["order"] != first["order"]

    def test_another_user_with_the_same_cart_gets_an_intent_of_their_own(self, shop):
        first = _started(shop)
        grace = users.user_create(email="grace@example.com", password=PASSWORD, name="Grace")
        wait_until(settled, message="grace in Stripe")

        assert _started(shop, client=client_for(grace))["payment_intent"] != first["payment_intent"]

    @pytest.mark.parametrize(
        ("settle", "first_becomes"), [("paid", OrderStatus.PAID), ("canceled", OrderStatus.CANCELED)]
    )
    def test_the_same_cart_right_after_its_intent_was_settled_is_a_new_order_and_intent(
        self, shop, settle, first_becomes
    ):
        """Stripe paid (or canceled) the intent a moment ago and its event has not arrived: handing it back would
        leave the app an intent it can no longer confirm."""
        emulator = shop["emulator"]
        first = _started(shop)
        emulator.control("POST", "webhooks", {"paused": True})  # the intent's events are late
        if settle == "paid":
            _confirm(first, emulator, "pm_card_visa")
        else:
            _secret_client(emulator).v1.payment_intents.cancel(first["payment_intent"])

        again = _started(shop)
        emulator.control("POST", "webhooks", {"paused": False})

        assert (again["order"], again["payment_intent"]) != (first["order"], first["payment_intent"])
        assert again["status"] == "pending"
        assert _confirm(again, emulator, "pm_card_mastercard").status == "succeeded"
        order_settles(first["order"], first_becomes)
        order_settles(again["order"], OrderStatus.PAID)

    def test_paying_twice_before_either_event_arrives_never_hands_back_the_first_paid_intent(self, shop):
        emulator = shop["emulator"]
        first = _started(shop)
        emulator.control("POST", "webhooks", {"paused": True})
        _confirm(first, emulator, "pm_card_visa")
        second = _started(shop)
        _confirm(second, emulator, "pm_card_visa")

        third = _started(shop)
        emulator.control("POST", "webhooks", {"paused": False})

        assert third["order"] not in (first["order"], second["order"])
        assert _confirm(third, emulator, "pm_card_mastercard").status == "succeeded"
        for started in (first, second, third):
            order_settles(started["order"], OrderStatus.PAID)

    def test_a_declined_intent_is_handed_back_for_another_card(self, shop):
        first = _started(shop)
        with pytest.raises(stripe.CardError):
            _confirm(first, shop["emulator"], "pm_card_chargeDeclined")

        again = _started(shop)

        assert (again["order"], again["payment_intent"], again["client_secret"]) == (
            first["order"],
            first["payment_intent"],
            first["client_secret"],
        )
        _confirm(again, shop["emulator"], "pm_card_visa")
        order_settles(first["order"], OrderStatus.PAID)

    def test_an_intent_waiting_for_3d_secure_is_handed_back(self, shop):
        first = _started(shop)
        _confirm(first, shop["emulator"], "pm_card_authenticationRequired", return_url="https://shop.example/")

        again = _started(shop)

        assert (again["order"], again["payment_intent"]) == (first["order"], first["payment_intent"])
        shop["emulator"].control(
            "POST", f"payment_intents/{first['payment_intent']}/authenticate", {"outcome": "complete"}
        )
        order_settles(first["order"], OrderStatus.PAID)

    def test_while_stripe_cannot_say_what_became_of_the_intent_no_second_order_is_made(self, shop):
        first = _started(shop)
        shop["emulator"].add_fault(
            status=503, method="GET", path_prefix=f"/v1/payment_intents/{first['payment_intent']}"
        )

        answer = client_for(shop["customer"]).post(
            INTENTS, {"lines": [{"price": shop["teapot"].pk, "quantity": 1}]}, format="json"
        )

        assert answer.status_code == 503
        assert list(Order.objects.values_list("pk", "status")) == [(first["order"], OrderStatus.PENDING)]
        shop["emulator"].control("DELETE", "faults")
        assert _started(shop)["payment_intent"] == first["payment_intent"]

    def test_an_idempotency_key_replays_the_answer_and_keeps_no_client_secret(self, shop):
        client = client_for(shop["customer"])
        first = _started(shop, client=client, HTTP_IDEMPOTENCY_KEY="app-key-1")
        replay = client.post(
            INTENTS,
            {"lines": [{"price": shop["teapot"].pk, "quantity": 1}]},
            format="json",
            HTTP_IDEMPOTENCY_KEY="app-key-1",
        )
        misuse = client.post(
            INTENTS,
            {"lines": [{"price": shop["cup"].pk, "quantity": 1}]},
            format="json",
            HTTP_IDEMPOTENCY_KEY="app-key-1",
        )

        assert replay.status_code == 201
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json() == first
        assert misuse.status_code == 409
        kept = IdempotentRequest.objects.get(key="app-key-1").response_body
        assert "client_secret" not in kept
        assert first["client_secret"] not in str(kept)


class TestCancel:
    def test_canceling_a_pending_app_order_cancels_its_intent(self, shop):
        started = _started(shop)

        answer = client_for(shop["customer"]).post(f"/api/v1/orders/{started['order']}/cancel")

        assert (answer.status_code, answer.json()["status"]) == (200, "canceled")
        intent = _secret_client(shop["emulator"]).v1.payment_intents.retrieve(started["payment_intent"])
        assert (intent.status, intent.cancellation_reason) == ("canceled", "requested_by_customer")
        webhooks_quiet(shop["emulator"])
        assert Payment.objects.get(order_id=started["order"]).status == PaymentStatus.CANCELED
        assert Order.objects.get(pk=started["order"]).status == OrderStatus.CANCELED
        with pytest.raises(stripe.InvalidRequestError):
            _confirm(started, shop["emulator"], "pm_card_visa")

    def test_an_intent_canceled_in_stripe_cancels_its_order(self, shop):
        """Canceled in the dashboard, or by the app's own server: only the event tells us."""
        started = _started(shop)

        _secret_client(shop["emulator"]).v1.payment_intents.cancel(started["payment_intent"])

        order_settles(started["order"], OrderStatus.CANCELED)
        assert _payment(started["order"], PaymentStatus.CANCELED).payment_intent_id == started["payment_intent"]
        shown = client_for(shop["customer"]).get(f"/api/v1/orders/{started['order']}").json()
        assert (shown["status"], [p["status"] for p in shown["payments"]]) == ("canceled", ["canceled"])

    def test_a_cancel_racing_the_payment_refunds_instead(self, shop):
        """The app paid a moment ago; the event is not here yet when the customer cancels."""
        shop["emulator"].control("POST", "webhooks", {"paused": True})
        started = _started(shop)
        _confirm(started, shop["emulator"], "pm_card_visa")

        answer = client_for(shop["customer"]).post(f"/api/v1/orders/{started['order']}/cancel")
        shop["emulator"].control("POST", "webhooks", {"paused": False})

        assert (answer.status_code, answer.json()["status"]) == (200, "refunded")
        webhooks_quiet(shop["emulator"])
        order = Order.objects.get(pk=started["order"])
        assert (order.status, order.amount_refunded) == (OrderStatus.REFUNDED, 4500)
        assert Payment.objects.get(order=order).status == PaymentStatus.REFUNDED


class TestForgedAndDisorderly:
    def test_an_intent_made_elsewhere_naming_an_order_in_its_metadata_pays_nothing(self, shop):
        started = _started(shop)
        forged = _secret_client(shop["emulator"]).v1.payment_intents.create(
            params={"amount": 100, "currency": "eur", "metadata": {"order": str(started["order"])}}
        )

        _secret_client(shop["emulator"]).v1.payment_intents.confirm(
            forged.id, params={"payment_method": "pm_card_visa"}
        )
        webhooks_quiet(shop["emulator"])

        assert Order.objects.get(pk=started["order"]).status == OrderStatus.PENDING
        assert not Payment.objects.filter(payment_intent_id=forged.id).exists()

    @pytest.mark.parametrize(
        ("took", "charged"),
        [
            ({"amount": 100, "amount_received": 100}, (100, "eur")),
            ({"currency": "usd", "amount_received": 4500}, (4500, "usd")),
        ],
        ids=["another-amount", "another-currency"],
    )
    def test_an_intent_that_took_another_amount_parks_the_order(self, shop, live_server, settings, took, charged):
        receipts = OutgoingMessage.objects.filter(kind=MessageKind.RECEIPT).count()
        started = _started(shop)
        intent = _secret_client(shop["emulator"]).v1.payment_intents.retrieve(started["payment_intent"]).to_dict()
        took_other = {**intent, "status": "succeeded", **took}

        assert (
            _deliver(live_server, settings, event("payment_intent.succeeded", took_other, event_id="evt_other")) == 200
        )

        order = order_settles(started["order"], OrderStatus.REVIEW)
        assert (order.amount_total, order.currency) == (4500, "eur")
        assert (order.amount_charged, order.currency_charged) == charged
        webhooks_quiet(shop["emulator"])
        assert OutgoingMessage.objects.filter(kind=MessageKind.RECEIPT).count() == receipts

    def test_a_late_decline_does_not_undo_a_payment(self, shop, live_server, settings):
        started = _started(shop)
        _confirm(started, shop["emulator"], "pm_card_visa")
        order_settles(started["order"], OrderStatus.PAID)
        webhooks_quiet(shop["emulator"])
        intent = _secret_client(shop["emulator"]).v1.payment_intents.retrieve(started["payment_intent"]).to_dict()
        stale = {
            **intent,
            "status": "requires_payment_method",
            "last_payment_error": {"code": "card_declined", "decline_code": "generic_decline", "message": "old"},
        }

        delivered = _deliver(
            live_server,
            settings,
            event("payment_intent.payment_failed", stale, event_id="evt_stale", created=intent["created"] - 60),
        )
        webhooks_quiet(shop["emulator"])

        assert delivered == 200
        assert Order.objects.get(pk=started["order"]).status == OrderStatus.PAID
        assert Payment.objects.get(order_id=started["order"]).status == PaymentStatus.SUCCEEDED

    def test_a_refund_made_in_the_dashboard_shows_on_the_payment(self, shop):
        started = _started(shop)
        _confirm(started, shop["emulator"], "pm_card_visa")
        order_settles(started["order"], OrderStatus.PAID)

        _secret_client(shop["emulator"]).v1.refunds.create(
            params={"payment_intent": started["payment_intent"], "amount": 500}
        )

        order = order_settles(started["order"], OrderStatus.PARTIALLY_REFUNDED)
        payment = _payment(order.pk, PaymentStatus.PARTIALLY_REFUNDED)
        assert (payment.amount_refunded, order.amount_refunded) == (500, 500)

    def test_a_refund_known_only_from_charge_refunded_shows_on_the_order_and_payment(self, shop, live_server, settings):
        """Its `refund.created` is lost: the refund still counts, from the charge's own list of refunds."""
        emulator = shop["emulator"]
        started = _started(shop)
        _confirm(started, emulator, "pm_card_visa")
        order_settles(started["order"], OrderStatus.PAID)
        webhooks_quiet(emulator)
        emulator.control("POST", "webhooks", {"paused": True})  # nothing Stripe sends from here on arrives

        refund = _secret_client(emulator).v1.refunds.create(
            params={"payment_intent": started["payment_intent"], "amount": 500}
        )
        sent = _secret_client(emulator).v1.events.list(params={"limit": 100}).data
        charge_refunded = next(e.to_dict() for e in sent if e.type == "charge.refunded")

        assert _deliver(live_server, settings, charge_refunded) == 200
        order = order_settles(started["order"], OrderStatus.PARTIALLY_REFUNDED)
        payment = _payment(order.pk, PaymentStatus.PARTIALLY_REFUNDED)
        assert (payment.amount_refunded, order.amount_refunded) == (500, 500)
        assert list(order.refunds.values_list("stripe_refund_id", flat=True)) == [refund.id]
        assert not WebhookEvent.objects.filter(type="refund.created").exists()


class TestRefusals:
    def test_without_a_publishable_key_the_app_is_told_and_nothing_is_made(self, shop, settings):
        settings.STRIPE_PUBLISHABLE_KEY = ""

        answer = client_for(shop["customer"]).post(
            INTENTS, {"lines": [{"price": shop["teapot"].pk, "quantity": 1}]}, format="json"
        )

        assert answer.status_code == 503
        assert "publishable key" in answer.json()["detail"]
        assert not Order.objects.exists()

    @pytest.mark.parametrize(
        ("cart", "field"),
        [({"lines": []}, "lines"), ({"lines": [{"price": 999999, "quantity": 1}]}, "lines"), ({}, "lines")],
    )
    def test_a_bad_cart_is_a_400_and_makes_nothing(self, shop, cart, field):
        answer = client_for(shop["customer"]).post(INTENTS, cart, format="json")

        assert answer.status_code == 400
        assert field in answer.json()
        assert not Order.objects.exists()

    def test_stripe_refusing_the_intent_leaves_no_pending_order(self, shop):
        shop["emulator"].add_fault(
            path_prefix="/v1/payment_intents", method="POST", status=400, message="Amount too small"
        )

        answer = client_for(shop["customer"]).post(
            INTENTS, {"lines": [{"price": shop["teapot"].pk, "quantity": 1}]}, format="json"
        )

        assert answer.status_code == 502
        assert not Order.objects.exclude(status=OrderStatus.CANCELED).exists()


class TestRaces:
    def test_three_identical_requests_at_once_make_one_order_and_one_intent(self, shop, live_server):
        headers = {"Authorization": f"Bearer {AccessToken.for_user(shop['customer'])}"}
        cart = {"lines": [{"price": shop["cup"].pk, "quantity": 2}]}
        barrier, answers = threading.Barrier(3), []

        def post():
            barrier.wait()
            answers.append(requests.post(f"{live_server.url}{INTENTS}", json=cart, headers=headers, timeout=30))

        threads = [threading.Thread(target=post) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert [answer.status_code for answer in answers] == [201, 201, 201]
        assert len({answer.json()["payment_intent"] for answer in answers}) == 1
        assert Order.objects.count() == 1
        made = shop["emulator"].requests_seen(method="POST", path_prefix="/v1/payment_intents")
        assert len({r["idempotency_key"] for r in made if r["status"] == 200}) == 1

    def test_a_price_changed_after_the_intent_was_made_charges_what_the_order_says(self, shop):
        started = _started(shop)
        catalog.price_update(price=shop["teapot"], data={"unit_amount": 9900})

        _confirm(started, shop["emulator"], "pm_card_visa")

        order = order_settles(started["order"], OrderStatus.PAID)
        assert (order.amount_total, order.amount_charged) == (4500, 4500)
