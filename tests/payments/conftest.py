"""Fixtures of the payments unit tests."""

import pytest

from apps.payments.gateway import client
from tests.payments.stripe_stand_in import API_KEY, StripeStandIn


@pytest.fixture
def stripe_stand_in(settings, monkeypatch) -> StripeStandIn:
    """Stripe, in memory, behind `gateway()` for this test: a worker's gateway that tries each call once
    (`STRIPE_MAX_RETRIES=0`, so nothing sleeps), with no rate budget or circuit breaker in the way."""
    settings.STRIPE_SECRET_KEY = API_KEY
    settings.STRIPE_MAX_RETRIES = 0
    stand_in = StripeStandIn()
    monkeypatch.setattr(client, "_gateway", lambda *configuration: stand_in.gateway)
    return stand_in
