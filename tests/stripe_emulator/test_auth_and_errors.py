import pytest
import requests
import stripe


@pytest.mark.parametrize(
    "key",
    [
        "sk_test_short",  # dj-stripe refuses keys this short too
        "sk_live_" + "a" * 24,  # the emulator is test mode only
        "pk_live_" + "a" * 24,  # nor is a live publishable key
        "sk_test_" + "a" * 23 + "!",
    ],
)
def test_malformed_key_is_401_with_stripes_error_body(emulator, key):
    client = stripe.StripeClient(key, base_addresses={"api": emulator.url}, max_network_retries=0)

    with pytest.raises(stripe.AuthenticationError) as error:
        client.v1.customers.list()

    assert error.value.http_status == 401
    assert error.value.json_body["error"]["type"] == "invalid_request_error"
    assert "Invalid API Key provided" in error.value.json_body["error"]["message"]
    assert key not in error.value.json_body["error"]["message"]  # never echoed whole


def test_missing_key_is_401(emulator):
    response = requests.get(f"{emulator.url}/v1/customers", timeout=5)

    assert response.status_code == 401
    assert "You did not provide an API key" in response.json()["error"]["message"]
    assert response.headers["Request-Id"].startswith("req_")


def test_basic_auth_like_curl_works(emulator):
    response = requests.get(f"{emulator.url}/v1/customers", auth=(emulator.api_key, ""), timeout=5)

    assert response.status_code == 200
    assert response.json()["object"] == "list"


def test_unknown_url_is_404_like_stripe(emulator):
    response = requests.get(f"{emulator.url}/v1/nothing_here", auth=(emulator.api_key, ""), timeout=5)

    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/nothing_here)")


def test_every_answer_carries_a_request_id_and_the_api_version(stripe_client):
    customer = stripe_client.v1.customers.create(params={"email": "a@example.com"})

    headers = customer.last_response.headers
    assert headers["Request-Id"].startswith("req_")
    assert headers["Stripe-Version"] == stripe.api_version


def test_unknown_parameter_is_refused(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe_client.v1.customers.create(params={"emial": "a@example.com"})

    assert error.value.param == "emial"
    assert error.value.user_message == "Received unknown parameter: emial"
