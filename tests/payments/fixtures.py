"""Fixtures of the payment journeys, shared with mail's: Stripe delivering webhooks to a live server, and a
shop to buy from. A plugin (named in the root conftest), so tests use them without importing them."""

import pytest
import stripe
from django.db import transaction

from apps.catalog import services as catalog
from apps.payments.mirror.models import MirrorKind, MirrorRecord
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


@pytest.fixture
def plans(shop):
    """The shop sells plans too: Pro (15 eur a month, or Pro Plus at 45), and Team with a 14-day trial. The
    customer's Stripe customer runs on a test clock, so a test moves time for their subscriptions."""
    with transaction.atomic():
        pro = catalog.product_create(name="Pro")
        monthly = catalog.price_create(product=pro, unit_amount=1500, currency="eur", recurring_interval="month")
        plus = catalog.price_create(product=pro, unit_amount=4500, currency="eur", recurring_interval="month")
        team = catalog.product_create(name="Team")
        trial = catalog.price_create(
            product=team, unit_amount=9900, currency="eur", recurring_interval="month", trial_days=14
        )
    wait_until(settled, message="the plans in Stripe")
    emulator = shop["emulator"]
    client = stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url})
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": 1_767_268_800})  # 2026-01-01 12:00
    customer = MirrorRecord.objects.get(kind=MirrorKind.USER, object_id=shop["customer"].pk).stripe_id
    emulator.control("POST", f"customers/{customer}/test_clock", {"test_clock": clock.id})
    return {**shop, "pro": monthly, "plus": plus, "team": trial, "clock": clock.id, "stripe": client}
