"""The shared Stripe budget is shared fairly, checkout sends customers back only to the shop, and an
answer about money names a request id instead of repeating Stripe's words."""

import pytest

from apps.catalog import services as catalog
from apps.payments.orders.models import Order, OrderStatus
from tests.helpers import client_for
from tests.payments.helpers import CHECKOUT, URLS
from tests.users.factories import UserFactory, operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe_calls_rate(settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "stripe_calls": "3/minute"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}


def _refused_cart() -> dict:
    """A cart refused before any Stripe call (no such price): only the rate limit is being counted."""
    return {"lines": [{"price": 999_999, "quantity": 1}], **URLS}


class TestStripeBudgetPerUser:
    def test_one_user_looping_on_checkout_is_stopped_and_others_are_not(self, stripe_calls_rate):
        looping, other = client_for(UserFactory()), client_for(UserFactory())

        answers = [looping.post(CHECKOUT, _refused_cart()).status_code for _ in range(4)]
        links = looping.post("/api/v1/payment-links", {"lines": [{"price": 999_999, "quantity": 1}]})
        others = other.post(CHECKOUT, _refused_cart())

        assert answers == [400, 400, 400, 429]
        assert links.status_code == 429  # one budget across every endpoint that spends Stripe's
        assert int(links["Retry-After"]) > 0
        assert others.status_code == 400

    def test_new_accounts_from_one_address_buy_no_more_budget(self, settings):
        rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "stripe_calls_address": "3/minute"}
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
        accounts = [client_for(UserFactory()) for _ in range(4)]

        answers = [account.post(CHECKOUT, _refused_cart()).status_code for account in accounts]

        assert answers == [400, 400, 400, 429]

    def test_cancel_refund_and_sync_spend_the_same_budget(self, stripe_calls_rate):
        user = UserFactory()
        order = Order.objects.create(user=user, status=OrderStatus.EXPIRED, currency="eur", amount_total=100)
        client = client_for(user)

        answers = [
            client.post(f"/api/v1/orders/{order.pk}/cancel").status_code,  # expired: nothing to ask Stripe
            client.get(f"/api/v1/orders/{order.pk}", {"sync": "1"}).status_code,
            client.post(f"/api/v1/orders/{order.pk}/cancel").status_code,
            client.get(f"/api/v1/orders/{order.pk}", {"sync": "1"}).status_code,
        ]
        plain_read = client.get(f"/api/v1/orders/{order.pk}")

        assert answers[0] == 200
        assert answers[3] == 429
        assert plain_read.status_code == 200  # reading without asking Stripe costs nothing

    def test_refunds_spend_the_same_budget(self, stripe_calls_rate):
        order = Order.objects.create(user=UserFactory(), status=OrderStatus.EXPIRED, currency="eur", amount_total=100)
        staff, colleague = client_for(operator()), client_for(operator())
        url = f"/api/v1/orders/{order.pk}/refunds"

        answers = [staff.post(url, {"amount": 100}, format="json") for _ in range(4)]
        elsewhere = staff.post(f"/api/v1/orders/{order.pk}/cancel")
        colleagues = colleague.post(url, {"amount": 100}, format="json")

        assert [answer.status_code for answer in answers] == [409, 409, 409, 429]  # 409: nothing was paid
        assert int(answers[3]["Retry-After"]) > 0
        assert elsewhere.status_code == 429  # one budget across refunds and cancels
        assert colleagues.status_code == 409  # the limit is per user


class TestCheckoutRedirects:
    @pytest.fixture
    def cart(self):
        product = catalog.product_create(name="Teapot")
        price = catalog.price_create(product=product, unit_amount=4500, currency="eur")
        return {"lines": [{"price": price.pk, "quantity": 1}]}

    @pytest.mark.parametrize(
        "url",
        [
            "https://evil.example/phish",
            "https://shop.example.evil.example/thanks",
            "https://evil.example/?next=https://shop.example/",
            "https://shop.example@evil.example/",
            "//evil.example/thanks",
            "http://shop.example/thanks",  # not https outside DEBUG
            "https://evil.example\\@shop.example/",  # a browser goes to evil.example
            "https://evil.example%5C@shop.example/",
            "https://user:pass@shop.example/",
            "https://shop.example:8443/thanks",
        ],
    )
    def test_customers_are_sent_back_only_to_the_shop(self, cart, url):
        answer = client_for(UserFactory()).post(CHECKOUT, {**cart, **URLS, "success_url": url})

        assert answer.status_code == 400
        assert "success_url" in answer.json()
        assert not Order.objects.exists()

    def test_the_hosts_are_a_setting(self, cart, settings):
        settings.CHECKOUT_REDIRECT_HOSTS = [".example.net"]
        client = client_for(UserFactory())

        subdomain = client.post(CHECKOUT, {**cart, **URLS, "cancel_url": "https://www.example.net/cart"})
        shop = client.post(CHECKOUT, {**cart, **URLS})

        assert "cancel_url" not in subdomain.json()  # accepted (the cart goes on to Stripe, not configured here)
        assert "success_url" in shop.json()

    def test_http_is_accepted_while_debugging(self, cart, settings):
        settings.DEBUG = True
        settings.CHECKOUT_REDIRECT_HOSTS = ["localhost"]

        answer = client_for(UserFactory()).post(
            CHECKOUT, {**cart, "success_url": "http://localhost:8000/ok", "cancel_url": "http://localhost:8000/no"}
        )

        assert "success_url" not in answer.json()
        assert "cancel_url" not in answer.json()


class TestRequestIds:
    def test_every_answer_carries_a_request_id(self, api_client):
        first, second = api_client.get("/api/v1/products"), api_client.get("/api/v1/products")

        assert len(first["X-Request-ID"]) == 32
        assert first["X-Request-ID"] != second["X-Request-ID"]

    def test_a_clients_own_id_is_replaced(self, api_client):
        answer = api_client.get("/api/v1/products", HTTP_X_REQUEST_ID="someone-elses-request-id")

        assert answer["X-Request-ID"] != "someone-elses-request-id"

    def test_behind_a_proxy_its_well_formed_id_is_kept_and_anything_else_replaced(self, api_client, settings):
        settings.BEHIND_PROXY = True
        kept = api_client.get("/api/v1/products", HTTP_X_REQUEST_ID="lb-7f3a9c2e-41")
        replaced = api_client.get("/api/v1/products", HTTP_X_REQUEST_ID="bad id\nlevel=ERROR forged=1")

        assert kept["X-Request-ID"] == "lb-7f3a9c2e-41"
        assert replaced["X-Request-ID"] != "bad id\nlevel=ERROR forged=1"
        assert len(replaced["X-Request-ID"]) == 32

    def test_an_unknown_api_url_is_a_json_404(self, api_client):
        answer = api_client.get("/api/v1/no-such-thing/")

        assert answer.status_code == 404
        assert answer.json() == {"detail": "Not found."}


def test_a_stripe_outage_answers_without_internals(settings):
    """No Stripe configured at all: checkout cannot reach Stripe; the 503 says so and nothing more."""
    settings.STRIPE_MIRROR_ENABLED = False
    product = catalog.product_create(name="Teapot")
    price = catalog.price_create(product=product, unit_amount=4500, currency="eur")

    answer = client_for(UserFactory()).post(CHECKOUT, {"lines": [{"price": price.pk, "quantity": 1}], **URLS})

    assert answer.status_code == 503
    assert answer.json() == {
        "detail": "The payment provider cannot be reached; nothing was charged.",
        "request_id": answer["X-Request-ID"],
    }
