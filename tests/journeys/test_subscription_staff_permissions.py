"""Being staff opens no one's subscription: listing everyone's, ending one at once and choosing how a plan
change is prorated need djstripe's permissions, through the API on a subscription Stripe really holds."""

import pytest

from apps.users.models import User
from tests.helpers import client_for
from tests.payments.helpers import checkout_cart, webhooks_quiet
from tests.users.factories import UserFactory, grant

pytestmark = pytest.mark.integration

SUBSCRIPTIONS = "/api/v1/subscriptions"


def _subscribed(plans) -> dict:
    """The customer buys Pro through checkout; Stripe's events bring the subscription here."""
    client = client_for(plans["customer"])
    started = checkout_cart(client, [{"price": plans["pro"].pk, "quantity": 1}])
    assert started.status_code == 201, started.content
    plans["emulator"].complete_checkout(started.json()["session_id"])
    webhooks_quiet(plans["emulator"])
    [subscription] = client.get(SUBSCRIPTIONS).json()["results"]
    return subscription


def test_bare_staff_neither_see_others_subscriptions_nor_end_or_prorate_their_own(plans):
    subscription = _subscribed(plans)
    url = f"{SUBSCRIPTIONS}/{subscription['id']}"
    bare = client_for(UserFactory(is_staff=True))
    viewer = client_for(grant(UserFactory(is_staff=True), "djstripe.view_subscription"))

    listed_by_bare, listed_by_viewer = bare.get(SUBSCRIPTIONS).json(), viewer.get(SUBSCRIPTIONS).json()
    others_at_once = bare.post(f"{url}/cancel", {"at_once": True}, format="json")
    # The subscriber is staff too, with no permission: their own subscription still ends with its period.
    User.objects.filter(pk=plans["customer"].pk).update(is_staff=True)
    owner = client_for(User.objects.get(pk=plans["customer"].pk))
    at_once = owner.post(f"{url}/cancel", {"at_once": True}, format="json")
    prorated = owner.post(f"{url}/change", {"price": plans["plus"].pk, "proration": "none"}, format="json")

    assert (listed_by_bare["count"], listed_by_viewer["count"]) == (0, 1)
    assert others_at_once.status_code == 404
    assert at_once.status_code == 403
    assert "for staff" in at_once.json()["detail"]
    assert prorated.status_code == 403
    assert "for staff to choose" in prorated.json()["detail"]
    asked_stripe = plans["emulator"].requests_seen(path_prefix=f"/v1/subscriptions/{subscription['id']}")
    assert [r["method"] for r in asked_stripe if r["method"] != "GET"] == []  # refused before any change reached it
    after = owner.get(url).json()
    assert (after["status"], after["cancel_at_period_end"]) == ("active", False)
    assert [p["price"] for p in after["plans"]] == [plans["pro"].pk]
