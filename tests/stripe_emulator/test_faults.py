import math
import time

import pytest
import requests
import stripe


def test_429_like_stripes_limiter_then_back_to_normal(emulator, stripe_client):
    emulator.add_fault(status=429, count=2, path_prefix="/v1/customers")

    refusals = []
    for _ in range(2):
        with pytest.raises(stripe.RateLimitError) as error:
            stripe_client.v1.customers.list()
        refusals.append(error.value)

    assert stripe_client.v1.customers.list().object == "list"
    # The SDK leaves `code` unset on RateLimitError; the body carries it.
    assert [e.json_body["error"]["code"] for e in refusals] == ["rate_limit", "rate_limit"]
    assert [e.headers["Stripe-Rate-Limited-Reason"] for e in refusals] == ["global-rate", "global-rate"]


def test_lock_timeout_429_asks_for_a_retry(emulator, stripe_client):
    emulator.add_fault(status=429, code="lock_timeout", count=1)

    with pytest.raises(stripe.RateLimitError) as error:
        stripe_client.v1.customers.list()

    assert error.value.json_body["error"]["code"] == "lock_timeout"
    assert error.value.headers["Stripe-Should-Retry"] == "true"


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_stripes_api_errors(emulator, stripe_client, status):
    emulator.add_fault(status=status, count=1)

    with pytest.raises(stripe.APIError) as error:
        stripe_client.v1.customers.list()

    assert error.value.http_status == status
    assert error.value.json_body["error"]["type"] == "api_error"


def test_a_ratio_fails_about_that_share(emulator, stripe_client):
    emulator.add_fault(status=500, ratio=0.5, path_prefix="/v1/customers")

    failures = 0
    for _ in range(200):
        try:
            stripe_client.v1.customers.list()
        except stripe.APIError:
            failures += 1

    assert 60 < failures < 140


def test_faults_apply_only_to_their_path_and_method(emulator, stripe_client):
    emulator.add_fault(status=500, path_prefix="/v1/products", method="POST")

    stripe_client.v1.customers.create(params={"email": "a@example.com"})
    stripe_client.v1.products.list()
    with pytest.raises(stripe.APIError):
        stripe_client.v1.products.create(params={"name": "Tea"})


def test_latency(emulator, stripe_client):
    emulator.add_fault(latency_ms=300, count=1)

    started = time.monotonic()
    stripe_client.v1.customers.list()
    slow = time.monotonic() - started
    started = time.monotonic()
    stripe_client.v1.customers.list()
    fast = time.monotonic() - started

    assert slow >= 0.3
    assert fast < 0.2


def test_clearing_faults(emulator, stripe_client):
    emulator.add_fault(status=500)
    emulator.control("DELETE", "faults")

    assert stripe_client.v1.customers.list().object == "list"


def test_bad_fault_is_400(emulator):
    response = emulator.http.post(f"{emulator.url}/_emulator/faults", json={"status": 418}, timeout=5)

    assert response.status_code == 400


def test_rate_limiter_per_endpoint_and_per_account(emulator, stripe_client):
    emulator.control("POST", "rate_limit", {"per_second": 100, "per_endpoint_per_second": 3})

    outcomes = {"customers": [], "products": []}
    started = time.monotonic()
    for _ in range(15):
        for name, call in (
            ("customers", stripe_client.v1.customers.list),
            ("products", stripe_client.v1.products.list),
        ):
            try:
                call()
                outcomes[name].append(200)
            except stripe.RateLimitError as error:
                outcomes[name].append(error.headers["Stripe-Rate-Limited-Reason"])
    elapsed = time.monotonic() - started

    # Each endpoint has its own budget of 3 a second, so each fails on its own count: its burst, and what came
    # back while the calls went on (a busy machine makes them slower, not the budget larger).
    for results in outcomes.values():
        assert 2 <= results.count(200) <= 4 + math.ceil(elapsed * 3)
        assert "endpoint-rate" in results
        assert set(results) <= {200, "endpoint-rate"}
    assert emulator.control("GET", "rate_limit")["rejected"] == sum(len(r) - r.count(200) for r in outcomes.values())


def test_rate_limiter_off_again(emulator, stripe_client):
    emulator.control("POST", "rate_limit", {"per_second": 1})
    emulator.control("DELETE", "rate_limit")

    for _ in range(5):
        stripe_client.v1.customers.list()


def test_request_log_counts_what_clients_asked(emulator, stripe_client):
    stripe_client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "log-1"})
    stripe_client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "log-1"})
    stripe_client.v1.products.list()

    posts = emulator.requests_seen(method="POST")
    by_key = emulator.requests_seen(idempotency_key="log-1")

    assert [(p["path"], p["status"], p["replayed"]) for p in posts] == [
        ("/v1/customers", 200, False),
        ("/v1/customers", 200, True),
    ]
    assert len(by_key) == 2
    assert emulator.control("GET", "requests", path_prefix="/v1/products", summary="true")["count"] == 1


def test_reset_forgets_everything(emulator, stripe_client):
    stripe_client.v1.customers.create(params={"email": "a@example.com"})
    emulator.add_fault(status=500, path_prefix="/v1/products")

    emulator.reset()

    assert stripe_client.v1.customers.list().data == []
    assert stripe_client.v1.products.list().data == []
    assert len(emulator.requests_seen()) == 2
    assert requests.get(f"{emulator.url}/_emulator/faults", timeout=5).json()["data"] == []


def test_stripe_refusing_one_object(emulator, stripe_client):
    emulator.add_fault(
        status=400,
        body_contains="currency=huf",
        message="Currency huf is not enabled on this account.",
        param="currency",
    )
    product = stripe_client.v1.products.create(params={"name": "Tea"})

    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe_client.v1.prices.create(params={"product": product.id, "currency": "huf", "unit_amount": 100})
    accepted = stripe_client.v1.prices.create(params={"product": product.id, "currency": "eur", "unit_amount": 100})

    assert (refused.value.param, refused.value.user_message) == (
        "currency",
        "Currency huf is not enabled on this account.",
    )
    assert accepted.currency == "eur"
