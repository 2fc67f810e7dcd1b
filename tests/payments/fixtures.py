"""Fixtures of the payment journeys, shared with mail's: Stripe delivering webhooks to a live server, and a
shop to buy from. A plugin (named in the root conftest), so tests use them without importing them."""

import pytest
import stripe
from django.db import transaction

from apps.catalog import services as catalog
from apps.users import services as users
from tests.payments.helpers import PASSWORD, settled
from tests.users.factories import OPERATOR_PERMISSIONS, grant
from tests.worker_fixtures import wait_until


@pytest.fixture
def webhooks(mirror, live_server, settings):
    """Stripe (the emulator) delivers signed events to this test's live /stripe/webhook/."""
    client = stripe.StripeClient(mirror.api_key, base_addresses={"api": mirror.url})
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": f"{live_server.url}/stripe/webhook/", "enabled_events": ["*"]}
    )
    settings.STRIPE_WEBHOOK_SECRETS = [endpoint.secret]
    mirror.control("POST", "webhooks", {"retry_base_seconds": 0.2})
    return mirror


@pytest.fixture
def shop(webhooks):
    """A customer, a staff member and two products on sale, all mirrored to Stripe."""
    with transaction.atomic():
        teapot = catalog.product_create(name="Teapot")
        teapot_price = catalog.price_create(product=teapot, unit_amount=4500, currency="eur")
        cup = catalog.product_create(name="Cup")
        cup_price = catalog.price_create(product=cup, unit_amount=1200, currency="eur")
    customer = users.user_create(email="ada@example.com", password=PASSWORD, name="Ada")
    staff = grant(users.user_create(email="staff@example.com", password=PASSWORD, is_staff=True), *OPERATOR_PERMISSIONS)
    wait_until(settled, message="the catalog and users in Stripe")
    return {"emulator": webhooks, "customer": customer, "staff": staff, "teapot": teapot_price, "cup": cup_price}
