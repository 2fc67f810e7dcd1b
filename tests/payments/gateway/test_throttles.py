"""Limits on the endpoints that spend the shared Stripe budget (apps/payments/gateway/throttles.py): one limit per
signed-in user wherever they come from, one per client address whoever signs in from it, and which order reads
count (only those that ask Stripe first).

Here the throttles on their own, given requests made by hand. The limits on the real endpoints (checkout, links,
cancel, refunds, `?sync=1` sharing one budget) are in tests/payments/test_abuse_limits.py.
"""

import pytest
from django.contrib.auth.models import AnonymousUser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apps.payments.gateway.throttles import StripeCallsAddressThrottle, StripeCallsThrottle, asks_stripe
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def two_a_minute(settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "stripe_calls": "2/minute"}
    rates["stripe_calls_address"] = "2/minute"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}


def _request(user, address: str = "203.0.113.7") -> Request:
    request = Request(APIRequestFactory().post("/api/v1/checkout/sessions", REMOTE_ADDR=address))
    request.user = user
    return request


def _allowed(throttle_class, requests) -> list[bool]:
    return [throttle_class().allow_request(request, view=None) for request in requests]


class TestPerUser:
    def test_a_user_is_held_to_one_limit_from_whatever_address(self):
        ada = UserFactory()
        requests = [_request(ada, address) for address in ("203.0.113.7", "198.51.100.1", "192.0.2.44")]

        assert _allowed(StripeCallsThrottle, requests) == [True, True, False]

    def test_each_user_has_a_limit_of_their_own(self):
        ada, bob = UserFactory(), UserFactory()

        assert _allowed(StripeCallsThrottle, [_request(ada), _request(ada), _request(bob)]) == [True, True, True]

    def test_anonymous_requests_fill_nobodys_limit(self):
        assert _allowed(StripeCallsThrottle, [_request(AnonymousUser()) for _ in range(4)]) == [True] * 4

    def test_a_user_over_the_limit_is_told_when_to_come_back(self):
        ada = UserFactory()
        throttle = StripeCallsThrottle()
        for _ in range(3):
            throttle.allow_request(_request(ada), view=None)

        assert 0 < throttle.wait() <= 60


class TestPerAddress:
    def test_new_accounts_from_one_address_share_its_limit(self):
        requests = [_request(UserFactory(), "203.0.113.7") for _ in range(3)]

        assert _allowed(StripeCallsAddressThrottle, requests) == [True, True, False]

    def test_another_address_is_not_held_back(self):
        busy = [_request(UserFactory(), "203.0.113.7") for _ in range(2)]

        assert _allowed(StripeCallsAddressThrottle, [*busy, _request(UserFactory(), "198.51.100.1")]) == [True] * 3

    def test_anonymous_requests_count_against_their_address(self):
        requests = [_request(AnonymousUser(), "203.0.113.7") for _ in range(3)]

        assert _allowed(StripeCallsAddressThrottle, requests) == [True, True, False]


@pytest.mark.parametrize(
    ("sync", "asks"),
    [("1", True), ("true", True), ("0", False), ("false", False), ("yes", False), ("", False), (None, False)],
)
def test_an_order_read_spends_the_budget_only_when_it_asks_stripe_first(sync, asks):
    query = {} if sync is None else {"sync": sync}
    request = Request(APIRequestFactory().get("/api/v1/orders/1", query))

    assert asks_stripe(request) is asks
