import time

import pytest
import stripe


@pytest.fixture
def endpoint(stripe_client, webhook_receiver):
    return stripe_client.v1.webhook_endpoints.create(params={"url": webhook_receiver.url, "enabled_events": ["*"]})


def _wait_for(predicate, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


class TestEvents:
    def test_every_change_emits_an_event_with_previous_attributes(self, stripe_client):
        customer = stripe_client.v1.customers.create(
            params={"email": "a@example.com"}, options={"idempotency_key": "k-1"}
        )
        stripe_client.v1.customers.update(customer.id, params={"name": "Ada"})
        stripe_client.v1.customers.delete(customer.id)

        events = stripe_client.v1.events.list().data[::-1]

        assert [e.type for e in events] == ["customer.created", "customer.updated", "customer.deleted"]
        assert events[0]["request"]["idempotency_key"] == "k-1"
        assert events[0]["request"]["id"].startswith("req_")
        assert events[1].data.object.name == "Ada"
        assert events[1].data.previous_attributes.to_dict() == {"name": None}
        assert stripe_client.v1.events.retrieve(events[2].id).data.object.id == customer.id

    def test_list_by_type_and_types(self, stripe_client):
        stripe_client.v1.products.create(
            params={"name": "Tea", "default_price_data": {"currency": "usd", "unit_amount": 1}}
        )

        assert [e.type for e in stripe_client.v1.events.list(params={"type": "price.created"}).data] == [
            "price.created"
        ]
        assert len(stripe_client.v1.events.list(params={"type": "p*"}).data) == 2
        assert len(stripe_client.v1.events.list(params={"types": ["product.created", "price.created"]}).data) == 2

    def test_an_unchanged_update_emits_nothing(self, stripe_client):
        product = stripe_client.v1.products.create(params={"name": "Tea"})
        stripe_client.v1.products.update(product.id, params={"name": "Tea"})

        assert [e.type for e in stripe_client.v1.events.list().data] == ["product.created"]


class TestEndpoints:
    def test_create_returns_the_secret_once(self, stripe_client, endpoint):
        fetched = stripe_client.v1.webhook_endpoints.retrieve(endpoint.id)

        assert endpoint.secret.startswith("whsec_")
        assert "secret" not in fetched
        assert fetched.enabled_events == ["*"]

    def test_update_list_delete(self, stripe_client, endpoint):
        updated = stripe_client.v1.webhook_endpoints.update(
            endpoint.id, params={"enabled_events": ["customer.created"], "disabled": True, "description": "shop"}
        )
        listed = stripe_client.v1.webhook_endpoints.list()
        deleted = stripe_client.v1.webhook_endpoints.delete(endpoint.id)

        assert (updated.enabled_events, updated.status, updated.description) == (
            ["customer.created"],
            "disabled",
            "shop",
        )
        assert [e.id for e in listed.data] == [endpoint.id]
        assert deleted.deleted is True
        assert stripe_client.v1.webhook_endpoints.list().data == []

    @pytest.mark.parametrize(
        ("params", "param"),
        [
            ({"enabled_events": ["*"]}, "url"),
            ({"url": "ftp://x"}, "url"),
            ({"url": "https://x.example"}, "enabled_events"),
        ],
    )
    def test_bad_endpoints(self, stripe_client, params, param):
        with pytest.raises(stripe.InvalidRequestError) as error:
            stripe_client.v1.webhook_endpoints.create(
                params={"enabled_events": ["*"], **params} if param == "url" else params
            )

        assert error.value.param == param


class TestDelivery:
    def test_deliveries_are_signed_so_the_sdk_accepts_them(self, emulator, stripe_client, endpoint, webhook_receiver):
        customer = stripe_client.v1.customers.create(params={"email": "a@example.com"})

        assert emulator.wait_for_webhooks()
        [delivery] = webhook_receiver.received
        event = stripe.Webhook.construct_event(delivery["body"], delivery["signature"], endpoint.secret)
        assert (event.type, event.data.object.id) == ("customer.created", customer.id)
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(delivery["body"], delivery["signature"], "whsec_wrong")

    def test_only_enabled_events_reach_an_endpoint_and_disabled_endpoints_get_nothing(
        self, emulator, stripe_client, webhook_receiver
    ):
        stripe_client.v1.webhook_endpoints.create(
            params={"url": webhook_receiver.url, "enabled_events": ["product.created"]}
        )
        off = stripe_client.v1.webhook_endpoints.create(params={"url": webhook_receiver.url, "enabled_events": ["*"]})
        stripe_client.v1.webhook_endpoints.update(off.id, params={"disabled": True})

        stripe_client.v1.customers.create(params={"email": "a@example.com"})
        stripe_client.v1.products.create(params={"name": "Tea"})

        assert emulator.wait_for_webhooks()
        assert [e["type"] for e in webhook_receiver.accepted()] == ["product.created"]

    def test_a_refused_delivery_is_retried_until_it_is_accepted(
        self, emulator, stripe_client, endpoint, webhook_receiver
    ):
        emulator.control("POST", "webhooks", {"retry_base_seconds": 0.05})
        webhook_receiver.fail_next = 2

        stripe_client.v1.customers.create(params={"email": "a@example.com"})

        assert _wait_for(lambda: len(webhook_receiver.accepted()) == 1)
        # The emulator notes an attempt once the answer is back, a moment after the receiver counted it.
        assert _wait_for(lambda: len(emulator.control("GET", "webhooks/attempts")["data"]) == 3)
        attempts = emulator.control("GET", "webhooks/attempts")["data"]
        assert [a["status"] for a in attempts] == [500, 500, 200]
        assert [a["attempt"] for a in attempts] == [1, 2, 3]
        event = stripe_client.v1.events.list().data[0]
        assert event.pending_webhooks == 0

    def test_delivery_gives_up_after_max_attempts(self, emulator, stripe_client, endpoint, webhook_receiver):
        emulator.control("POST", "webhooks", {"retry_base_seconds": 0.01, "max_attempts": 3})
        webhook_receiver.fail_next = 10

        stripe_client.v1.customers.create(params={"email": "a@example.com"})

        assert emulator.wait_for_webhooks()
        assert len(webhook_receiver.received) == 3
        assert webhook_receiver.accepted() == []

    def test_an_endpoint_that_does_not_answer_is_retried(self, emulator, stripe_client):
        emulator.control("POST", "webhooks", {"retry_base_seconds": 0.01, "max_attempts": 2})
        stripe_client.v1.webhook_endpoints.create(params={"url": "http://127.0.0.1:9/nothing", "enabled_events": ["*"]})

        stripe_client.v1.customers.create(params={"email": "a@example.com"})

        assert emulator.wait_for_webhooks()
        attempts = emulator.control("GET", "webhooks/attempts")["data"]
        assert [(a["status"], a["error"].split(":")[0]) for a in attempts] == [(None, "ConnectionRefusedError")] * 2

    def test_a_reset_waits_for_the_delivery_being_sent_and_forgets_its_retry(
        self, emulator, stripe_client, endpoint, webhook_receiver
    ):
        """The suite resets the emulator before it empties a test's tables: nothing may be delivered after."""
        emulator.control("POST", "webhooks", {"retry_base_seconds": 0.01})
        webhook_receiver.answer_after, webhook_receiver.fail_next = 0.5, 1
        stripe_client.v1.customers.create(params={"email": "a@example.com"})
        assert _wait_for(lambda: webhook_receiver.received)

        emulator.reset()
        answered_by_then = webhook_receiver.answered
        time.sleep(0.3)

        assert answered_by_then == 1
        assert len(webhook_receiver.received) == 1  # the refused delivery was not sent again

    def test_duplicates(self, emulator, stripe_client, endpoint, webhook_receiver):
        emulator.control("POST", "webhooks", {"duplicate_ratio": 1.0})

        stripe_client.v1.customers.create(params={"email": "a@example.com"})

        assert emulator.wait_for_webhooks()
        ids = [e["id"] for e in webhook_receiver.accepted()]
        assert len(ids) == 2
        assert len(set(ids)) == 1

    def test_pause_then_flush_shuffled(self, emulator, stripe_client, endpoint, webhook_receiver):
        emulator.control("POST", "webhooks", {"paused": True, "shuffle": True})
        for n in range(20):
            stripe_client.v1.customers.create(params={"email": f"c{n}@example.com"})
        time.sleep(0.2)
        held = list(webhook_receiver.received)

        emulator.control("POST", "webhooks/flush")

        assert held == []
        assert emulator.wait_for_webhooks()
        delivered = [e["data"]["object"]["email"] for e in webhook_receiver.accepted()]
        assert sorted(delivered) == sorted(f"c{n}@example.com" for n in range(20))
        assert delivered != [f"c{n}@example.com" for n in range(20)]

    def test_delay(self, emulator, stripe_client, endpoint, webhook_receiver):
        emulator.control("POST", "webhooks", {"delay_ms": 400})

        stripe_client.v1.customers.create(params={"email": "a@example.com"})
        time.sleep(0.2)
        early = len(webhook_receiver.received)

        assert emulator.wait_for_webhooks()
        assert (early, len(webhook_receiver.received)) == (0, 1)

    def test_delivery_happens_outside_the_request(self, emulator, stripe_client, endpoint, webhook_receiver):
        emulator.control("POST", "webhooks", {"paused": True})

        started = time.monotonic()
        stripe_client.v1.customers.create(params={"email": "a@example.com"})

        assert time.monotonic() - started < 1
        assert webhook_receiver.received == []
        emulator.control("POST", "webhooks", {"paused": False})
        assert emulator.wait_for_webhooks()
        assert len(webhook_receiver.accepted()) == 1
