"""A web request never waits on Stripe's account: one try per call, no wait for the shared budget, at most
the calls it is allowed; a worker waits and retries."""

import time

import pytest
import redis
from django.conf import settings

from apps.payments.gateway.client import StripeGateway
from apps.payments.gateway.errors import StripeUnavailable
from apps.payments.gateway.policies import (
    IN_WEB_REQUEST,
    WebRequestMiddleware,
    calls_at_most,
    current_policy,
    serving_web_request,
)


@pytest.fixture
def gateway_on_emulator(emulator, settings):
    client = redis.Redis.from_url(settings.COORDINATION_REDIS_URL)
    for key in client.scan_iter("stripe:*"):
        client.delete(key)
    settings.STRIPE_RATE_LIMIT_PER_SECOND = 1000
    settings.STRIPE_RATE_LIMIT_PER_ENDPOINT = 1000
    yield StripeGateway(emulator.api_key, emulator.url, timeout=5)
    for key in client.scan_iter("stripe:*"):
        client.delete(key)


def _create_customer(gw: StripeGateway):
    return gw.call(lambda options: gw.v1.customers.create(params={"email": "a@example.com"}, options=options))


def test_every_request_is_served_under_the_web_policy_and_nothing_else_is():
    served = WebRequestMiddleware(lambda request: current_policy())(request=None)

    assert served == IN_WEB_REQUEST
    assert current_policy().attempts == settings.STRIPE_MAX_RETRIES + 1
    assert current_policy().budget_wait_seconds > 0


def test_a_web_request_tries_once_and_never_sleeps_where_a_worker_retries(emulator, gateway_on_emulator):
    emulator.add_fault(status=429, path_prefix="/v1/customers", method="POST")

    started = time.monotonic()
    with serving_web_request(), pytest.raises(StripeUnavailable) as refused:
        _create_customer(gateway_on_emulator)
    in_request = time.monotonic() - started
    tried_in_request = len(emulator.requests_seen(method="POST", path_prefix="/v1/customers"))
    with pytest.raises(StripeUnavailable):
        _create_customer(gateway_on_emulator)
    tried_in_all = len(emulator.requests_seen(method="POST", path_prefix="/v1/customers"))

    assert tried_in_request == 1
    assert in_request < 0.5
    assert refused.value.retry_after > 0
    assert tried_in_all - tried_in_request == settings.STRIPE_MAX_RETRIES + 1  # the worker's tries, with backoff


def test_a_web_request_does_not_wait_for_the_shared_budget(emulator, gateway_on_emulator, settings):
    settings.STRIPE_RATE_LIMIT_PER_ENDPOINT = 1  # a request a second on each endpoint
    _create_customer(gateway_on_emulator)

    started = time.monotonic()
    with serving_web_request(), pytest.raises(StripeUnavailable, match="budget"):
        _create_customer(gateway_on_emulator)
    refused_after = time.monotonic() - started
    started = time.monotonic()
    _create_customer(gateway_on_emulator)  # a worker waits for its turn, and goes
    waited = time.monotonic() - started

    assert refused_after < 0.2
    assert 0.5 < waited < 3
    assert len(emulator.requests_seen(method="POST", path_prefix="/v1/customers")) == 2


def test_calls_beyond_the_allowance_are_refused_before_they_reach_stripe(emulator, gateway_on_emulator):
    with calls_at_most(1):
        _create_customer(gateway_on_emulator)
        with pytest.raises(StripeUnavailable, match="no more Stripe calls"):
            _create_customer(gateway_on_emulator)
    _create_customer(gateway_on_emulator)  # outside it, calls go again

    assert len(emulator.requests_seen(method="POST", path_prefix="/v1/customers")) == 2


def test_a_budget_that_cannot_be_read_is_stripe_unavailable_not_a_crash(emulator, settings):
    settings.COORDINATION_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    gw = StripeGateway(emulator.api_key, emulator.url, timeout=5)

    with serving_web_request(), pytest.raises(StripeUnavailable, match="budget cannot be read"):
        _create_customer(gw)

    assert emulator.requests_seen(method="POST", path_prefix="/v1/customers") == []
