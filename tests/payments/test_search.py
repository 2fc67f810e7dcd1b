"""`?search=` on the payments and subscriptions lists finds what it says it finds, within what one may see."""

import pytest

from tests.helpers import client_for
from tests.payments.factories import PaymentFactory
from tests.payments.helpers import checkout_cart, webhooks_quiet
from tests.users.factories import UserFactory, grant

PAYMENTS = "/api/v1/payments"
SUBSCRIPTIONS = "/api/v1/subscriptions"


def _found(client, path: str, search: str) -> list:
    response = client.get(path, {"search": search})
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.mark.django_db
def test_payments_are_found_by_order_intent_or_address_within_what_one_may_see():
    ada, bob = UserFactory(email="ada@example.com"), UserFactory(email="bob@example.com")
    first, second = PaymentFactory(order__user=ada), PaymentFactory(order__user=ada)
    bobs = PaymentFactory(order__user=bob)
    staff = client_for(grant(UserFactory(is_staff=True), "payments.view_payment"))

    assert [p["id"] for p in _found(staff, PAYMENTS, str(first.order_id))] == [first.pk]
    assert [p["id"] for p in _found(staff, PAYMENTS, second.payment_intent_id)] == [second.pk]
    assert sorted(p["id"] for p in _found(staff, PAYMENTS, "ada@example")) == sorted([first.pk, second.pk])
    assert [p["id"] for p in _found(staff, PAYMENTS, "bob@example.com")] == [bobs.pk]
    # A user searches their own payments only: another's address or order finds nothing.
    assert _found(client_for(ada), PAYMENTS, "bob@example.com") == []
    assert _found(client_for(ada), PAYMENTS, str(bobs.order_id)) == []


@pytest.mark.integration
def test_subscriptions_are_found_by_id_or_the_customers_address(plans):
    client = client_for(plans["customer"])
    for plan in ("pro", "team"):
        started = checkout_cart(client, [{"price": plans[plan].pk, "quantity": 1}])
        assert started.status_code == 201, started.content
        plans["emulator"].complete_checkout(started.json()["session_id"])
    webhooks_quiet(plans["emulator"])
    staff = client_for(plans["staff"])
    every = [sub["id"] for sub in staff.get(SUBSCRIPTIONS).json()["results"]]
    assert len(every) == 2

    assert [sub["id"] for sub in _found(staff, SUBSCRIPTIONS, every[0])] == [every[0]]
    assert sorted(sub["id"] for sub in _found(staff, SUBSCRIPTIONS, plans["customer"].email)) == sorted(every)
    assert _found(staff, SUBSCRIPTIONS, "nobody@example.com") == []
