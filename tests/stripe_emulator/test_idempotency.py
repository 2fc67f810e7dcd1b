import threading

import pytest
import requests
import stripe


def _create(client, key: str, email: str = "a@example.com"):
    return client.v1.customers.create(params={"email": email}, options={"idempotency_key": key})


def test_same_key_same_params_replays_the_first_answer(emulator, stripe_client):
    first = _create(stripe_client, "order-1")
    second = _create(stripe_client, "order-1")

    assert second.id == first.id
    assert first.last_response.headers.get("Idempotent-Replayed") is None
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(stripe_client.v1.customers.list().data) == 1


def test_same_key_other_params_is_an_idempotency_error(stripe_client):
    _create(stripe_client, "order-2")

    with pytest.raises(stripe.IdempotencyError) as error:
        _create(stripe_client, "order-2", email="b@example.com")

    assert error.value.http_status == 400
    assert "can only be used with the same parameters" in error.value.user_message
    assert len(stripe_client.v1.customers.list().data) == 1


def test_keys_are_per_api_key(emulator, stripe_client):
    other = stripe.StripeClient("sk_test_anotherAccountKey000000000", base_addresses={"api": emulator.url})

    _create(stripe_client, "shared-key")
    _create(other, "shared-key")

    assert len(stripe_client.v1.customers.list().data) == 2


def test_errors_are_replayed_too(stripe_client):
    errors = []
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError) as error:
            stripe_client.v1.prices.create(
                params={"product": "prod_missing", "currency": "usd", "unit_amount": 1},
                options={"idempotency_key": "price-1"},
            )
        errors.append(error.value)

    assert [e.code for e in errors] == ["resource_missing", "resource_missing"]
    assert errors[1].headers["Idempotent-Replayed"] == "true"


def test_a_request_that_failed_validation_is_not_remembered(stripe_client):
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.customers.create(params={"email": "not-an-email"}, options={"idempotency_key": "fixme"})

    fixed = stripe_client.v1.customers.create(
        params={"email": "good@example.com"}, options={"idempotency_key": "fixme"}
    )

    assert fixed.email == "good@example.com"


@pytest.mark.parametrize("email", ["s@example.com", "changed@example.com"], ids=["same-request", "changed-request"])
def test_a_request_still_running_with_the_same_key_is_409_whatever_the_second_asks(emulator, email):
    """Its parameters are compared only once the first has finished: until then nobody can say which object the
    key stands for, and a client told 400 would make another under a new key while the first still runs."""
    emulator.add_fault(latency_ms=600, path_prefix="/v1/customers", count=1)
    headers = {"Idempotency-Key": "slow-1"}
    auth = (emulator.api_key, "")
    answers: list[int] = []

    def post():
        answers.append(
            requests.post(
                f"{emulator.url}/v1/customers", data={"email": "s@example.com"}, headers=headers, auth=auth, timeout=10
            ).status_code
        )

    slow = threading.Thread(target=post)
    slow.start()
    threading.Event().wait(0.2)
    concurrent = requests.post(
        f"{emulator.url}/v1/customers", data={"email": email}, headers=headers, auth=auth, timeout=10
    )
    slow.join()

    assert concurrent.status_code == 409
    assert concurrent.json()["error"]["code"] == "idempotency_key_in_use"
    assert answers == [200]


def test_keys_longer_than_255_characters_are_refused(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as error:
        _create(stripe_client, "k" * 256)

    assert "at most 255" in error.value.user_message
    assert _create(stripe_client, "k" * 255).email == "a@example.com"


def test_get_requests_ignore_idempotency_keys(emulator):
    response = requests.get(
        f"{emulator.url}/v1/customers", headers={"Idempotency-Key": "ignored"}, auth=(emulator.api_key, ""), timeout=5
    )

    assert response.status_code == 200
    assert emulator.requests_seen(method="GET")[-1]["idempotency_key"] is None


def test_a_lost_answer_is_replayed_on_retry_and_nothing_is_made_twice(emulator, stripe_client):
    # The customer is created, but the client only sees a 500 (the answer was lost).
    emulator.add_fault(status=500, count=1, path_prefix="/v1/customers", phase="after")

    with pytest.raises(stripe.APIError):
        _create(stripe_client, "lost-1")
    retried = _create(stripe_client, "lost-1")

    assert retried.last_response.headers["Idempotent-Replayed"] == "true"
    assert [c.id for c in stripe_client.v1.customers.list().data] == [retried.id]


def test_a_500_before_the_endpoint_runs_is_not_remembered(emulator, stripe_client):
    emulator.add_fault(status=503, count=1, path_prefix="/v1/customers")

    with pytest.raises(stripe.APIError) as error:
        _create(stripe_client, "front-1")
    retried = _create(stripe_client, "front-1")

    assert error.value.headers["Stripe-Should-Retry"] == "true"
    assert retried.last_response.headers.get("Idempotent-Replayed") is None
    assert len(stripe_client.v1.customers.list().data) == 1


def test_a_500_raised_while_executing_is_replayed_and_says_do_not_retry(emulator, stripe_client):
    emulator.add_fault(status=500, count=1, path_prefix="/v1/customers", phase="saved")

    with pytest.raises(stripe.APIError) as first:
        _create(stripe_client, "saved-500")
    with pytest.raises(stripe.APIError) as replay:
        _create(stripe_client, "saved-500")

    assert first.value.headers["Stripe-Should-Retry"] == "false"
    assert replay.value.headers["Idempotent-Replayed"] == "true"
    assert stripe_client.v1.customers.list().data == []


def test_the_sdk_retries_a_lost_answer_with_its_own_key_and_creates_once(emulator):
    emulator.add_fault(status=500, count=1, path_prefix="/v1/customers", phase="after")
    client = stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url}, max_network_retries=2)

    created = client.v1.customers.create(params={"email": "retry@example.com"})

    assert created.email == "retry@example.com"
    assert len(client.v1.customers.list().data) == 1
    posts = emulator.requests_seen(method="POST", path_prefix="/v1/customers")
    assert [p["status"] for p in posts] == [500, 200]
    assert posts[0]["idempotency_key"] == posts[1]["idempotency_key"]


def test_a_slow_answer_comes_after_the_change_is_made_and_a_retry_replays_it(emulator, stripe_client):
    """`phase: answer` delays the answer, not the work: a client that gives up (or dies) meanwhile finds, with
    the same key, the object the first request made."""
    emulator.add_fault(latency_ms=1500, count=1, path_prefix="/v1/customers", method="POST", phase="answer")

    with pytest.raises(requests.Timeout):
        requests.post(
            f"{emulator.url}/v1/customers",
            data={"email": "slow@example.com"},
            headers={"Idempotency-Key": "slow-1"},
            auth=(emulator.api_key, ""),
            timeout=0.5,
        )
    made = stripe_client.v1.customers.list().data
    retried = stripe_client.v1.customers.create(
        params={"email": "slow@example.com"}, options={"idempotency_key": "slow-1"}
    )

    assert [customer.id for customer in made] == [retried.id]
    assert retried.last_response.headers["Idempotent-Replayed"] == "true"


def test_a_slow_answer_takes_no_error_status(emulator):
    with pytest.raises(requests.HTTPError):
        emulator.add_fault(status=500, latency_ms=100, phase="answer")
