"""The one Stripe client: shared budget, circuit breaker, retries with the caller's own key.

The budget and the breaker on their own are in tests/payments/gateway/test_rate_budget.py and
tests/payments/gateway/test_circuit_breaker.py."""

import time

import pytest
import stripe

from apps.payments.gateway.client import StripeGateway
from apps.payments.gateway.errors import StripeKeySpent, StripeUnavailable


@pytest.fixture
def gateway_on_emulator(emulator, settings, budget_redis):
    settings.STRIPE_RATE_LIMIT_PER_SECOND = 1000
    settings.STRIPE_RATE_LIMIT_PER_ENDPOINT = 1000
    settings.STRIPE_CIRCUIT_FAILURES = 5
    settings.STRIPE_CIRCUIT_COOLDOWN_SECONDS = 2
    return StripeGateway(emulator.api_key, emulator.url, timeout=5)


def test_retryable_errors_are_retried_with_the_same_key(emulator, gateway_on_emulator):
    emulator.add_fault(status=429, count=1, path_prefix="/v1/customers")
    emulator.add_fault(status=503, count=1, path_prefix="/v1/customers")
    gw = gateway_on_emulator

    customer = gw.call(
        lambda options: gw.v1.customers.create(params={"email": "a@example.com"}, options=options),
        idempotency_key="key-1",
    )

    attempts = emulator.requests_seen(method="POST")
    assert customer.email == "a@example.com"
    assert [a["status"] for a in attempts] == [429, 503, 200]
    assert {a["idempotency_key"] for a in attempts} == {"key-1"}


def test_lasting_trouble_becomes_stripe_unavailable_for_the_task_to_retry(emulator, gateway_on_emulator):
    emulator.add_fault(status=500, count=4, path_prefix="/v1/customers")
    gw = gateway_on_emulator

    with pytest.raises(StripeUnavailable) as error:
        gw.call(
            lambda options: gw.v1.customers.create(params={"email": "a@example.com"}, options=options),
            idempotency_key="k",
        )

    assert "500" in str(error.value)
    assert error.value.retry_after > 0


def test_a_key_stripe_remembers_a_failure_for_asks_for_a_new_key(emulator, gateway_on_emulator):
    emulator.add_fault(status=500, count=1, path_prefix="/v1/customers", phase="saved")
    gw = gateway_on_emulator

    with pytest.raises(StripeKeySpent):
        gw.call(
            lambda options: gw.v1.customers.create(params={"email": "a@example.com"}, options=options),
            idempotency_key="k",
        )

    assert len(emulator.requests_seen(method="POST")) == 1  # replaying would only repeat the 500


def test_permanent_errors_are_not_retried(emulator, gateway_on_emulator):
    gw = gateway_on_emulator

    with pytest.raises(stripe.InvalidRequestError):
        gw.call(
            lambda options: gw.v1.customers.create(params={"email": "not-an-email"}, options=options),
            idempotency_key="k",
        )

    assert len(emulator.requests_seen(method="POST")) == 1


def test_the_circuit_stops_calls_reaching_stripe_then_lets_them_through(emulator, gateway_on_emulator):
    emulator.add_fault(status=503, path_prefix="/v1/customers")
    gw = gateway_on_emulator
    create = lambda options: gw.v1.customers.create(params={"email": "a@example.com"}, options=options)  # noqa: E731

    for _ in range(2):
        with pytest.raises(StripeUnavailable):
            gw.call(create, idempotency_key="k")
    reached = len(emulator.requests_seen(method="POST"))
    with pytest.raises(StripeUnavailable) as open_circuit:
        gw.call(create, idempotency_key="k")

    assert "circuit is open" in str(open_circuit.value)
    assert len(emulator.requests_seen(method="POST")) == reached  # nothing more reached Stripe
    emulator.control("DELETE", "faults")
    time.sleep(2.1)
    assert gw.call(create, idempotency_key="k").email == "a@example.com"
