"""The one Stripe client: shared budget, circuit breaker, retries with the caller's own key."""

import threading
import time

import pytest
import redis
import stripe
from django.conf import settings

from apps.payments.gateway.circuit_breaker import CircuitBreaker, CircuitOpen
from apps.payments.gateway.client import StripeGateway
from apps.payments.gateway.errors import StripeKeySpent, StripeUnavailable
from apps.payments.gateway.rate_budget import RateBudget, endpoint_of


@pytest.fixture
def budget_redis():
    client = redis.Redis.from_url(settings.COORDINATION_REDIS_URL)
    for key in client.scan_iter("stripe:*"):
        client.delete(key)
    yield settings.COORDINATION_REDIS_URL
    for key in client.scan_iter("stripe:*"):
        client.delete(key)


def test_endpoints_ignore_ids():
    assert endpoint_of("post", "/v1/products/prod_AbC123") == "POST /v1/products/{id}"
    assert (
        endpoint_of("GET", "/v1/checkout/sessions/cs_test_a1b2/line_items")
        == "GET /v1/checkout/sessions/{id}/line_items"
    )
    assert endpoint_of("POST", "/v1/customers") == "POST /v1/customers"


def test_workers_sharing_the_budget_never_exceed_it_together(budget_redis):
    # Four "workers", each with its own budget object, as separate processes would have.
    budgets = [RateBudget(per_second=20, per_endpoint=100, redis_url=budget_redis) for _ in range(4)]
    granted: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 2.0

    def work(budget):
        while time.monotonic() < stop_at:
            if budget.acquire("POST /v1/customers", max_wait=0.5) and time.monotonic() < stop_at:
                with lock:
                    granted.append(time.monotonic())

    threads = [threading.Thread(target=work, args=(budget,)) for budget in budgets for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # 20/s for 2 s, plus the small burst the bucket starts with.
    assert 36 <= len(granted) <= 20 * 2 + 5
    for start in granted:
        assert sum(1 for at in granted if start <= at < start + 1.0) <= 20 + 4


def test_each_endpoint_has_its_own_budget(budget_redis):
    budget = RateBudget(per_second=1000, per_endpoint=5, redis_url=budget_redis)

    customers = sum(budget.take("POST /v1/customers") == 0 for _ in range(20))
    products = sum(budget.take("POST /v1/products") == 0 for _ in range(20))

    assert customers == products == 1  # the burst of a 5/s bucket is one request; the rest wait


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "in-process"])
def test_a_waiting_request_books_its_moment_instead_of_asking_again_and_a_refused_one_books_nothing(
    budget_redis, shared
):
    budget = RateBudget(per_second=100, per_endpoint=5, redis_url=budget_redis if shared else "")
    asks = []
    book = budget._book
    budget._book = lambda *args: asks.append(args) or book(*args)
    started = time.monotonic()

    for _ in range(5):  # one every 0.2 s
        assert budget.acquire("GET /v1/customers", max_wait=5)
    assert time.monotonic() - started >= 0.78
    assert len(asks) <= 2 * 5  # its endpoint's moment, then the account's: never a loop of asks

    assert not budget.acquire("GET /v1/customers", max_wait=0.01)
    time.sleep(0.21)
    assert budget.take("GET /v1/customers") == 0  # the refused request took no moment


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "in-process"])
def test_a_queue_on_one_endpoint_does_not_delay_another(budget_redis, shared):
    budget = RateBudget(per_second=100, per_endpoint=5, redis_url=budget_redis if shared else "")
    queued = [
        threading.Thread(target=budget.acquire, args=("POST /v1/products", 5)) for _ in range(10)
    ]  # two seconds of the products endpoint booked ahead
    for thread in queued:
        thread.start()
    time.sleep(0.1)

    started = time.monotonic()
    assert budget.acquire("POST /v1/checkout/sessions", max_wait=5)
    waited = time.monotonic() - started

    for thread in queued:
        thread.join()
    assert waited < 0.1


def test_the_budget_without_redis_works_in_one_process():
    budget = RateBudget(per_second=10, per_endpoint=10)
    started = time.monotonic()

    for _ in range(12):
        assert budget.acquire("GET /v1/customers", max_wait=5)

    assert time.monotonic() - started >= 0.9


def test_circuit_opens_after_repeated_failures_and_closes_by_itself(budget_redis):
    breaker = CircuitBreaker(threshold=3, cooldown=0.5, redis_url=budget_redis)
    other_worker = CircuitBreaker(threshold=3, cooldown=0.5, redis_url=budget_redis)

    for _ in range(3):
        breaker.record_failure()

    with pytest.raises(CircuitOpen) as error:
        other_worker.check()
    assert 0 < error.value.retry_after <= 0.5
    time.sleep(0.6)
    other_worker.check()


def test_a_success_resets_the_count(budget_redis):
    breaker = CircuitBreaker(threshold=3, cooldown=5, redis_url=budget_redis)

    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()

    breaker.check()


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


def test_resource_names_are_not_taken_for_ids():
    assert endpoint_of("POST", "/v1/payment_intents/pi_3Nx9/confirm") == "POST /v1/payment_intents/{id}/confirm"
    assert endpoint_of("GET", "/v1/payment_links/plink_1Q2w/line_items") == "GET /v1/payment_links/{id}/line_items"
