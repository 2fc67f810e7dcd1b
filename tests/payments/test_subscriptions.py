"""Plans sold, renewed, dunned and canceled, over HTTP: checkout, Stripe's events on a real worker, the
subscriptions API, the portal, mail, and time moved by a Stripe test clock."""

import re

import pytest
import requests

from apps.catalog.models import Product
from apps.mail.models import MessageKind, OutgoingMessage
from apps.payments.plans import user_has_active_plan
from tests.helpers import client_for
from tests.payments.helpers import URLS, checkout_cart, webhooks_quiet

DAY = 86400
SUBSCRIPTIONS = "/api/v1/subscriptions"


def advance(plans, days: float) -> None:
    clocks = plans["stripe"].v1.test_helpers.test_clocks
    now = clocks.retrieve(plans["clock"]).frozen_time
    clocks.advance(plans["clock"], params={"frozen_time": now + int(days * DAY)})
    webhooks_quiet(plans["emulator"])


def subscribe(plans, price_key: str = "pro"):
    client = client_for(plans["customer"])
    started = checkout_cart(client, [{"price": plans[price_key].pk, "quantity": 1}])
    assert started.status_code == 201, started.content
    body = started.json()
    plans["emulator"].complete_checkout(body["session_id"])
    webhooks_quiet(plans["emulator"])
    return client, body


def the_subscription(client) -> dict:
    found = client.get(SUBSCRIPTIONS).json()["results"]
    assert len(found) == 1, found
    return found[0]


def mails(kind: str) -> int:
    return OutgoingMessage.objects.filter(kind=kind).count()


def test_a_plan_lives_through_renewal_dunning_a_new_card_and_cancellation(plans):
    """The journey of the issue: subscribe, renew, decline, fix the card in the portal, cancel."""
    emulator = plans["emulator"]
    pro = Product.objects.get(name="Pro")
    client, started = subscribe(plans)

    assert started["mode"] == "subscription"
    assert started["order"] is None
    sub = the_subscription(client)
    assert sub["status"] == "active"
    assert [(p["price"], p["product_name"], p["unit_amount"]) for p in sub["plans"]] == [(plans["pro"].pk, "Pro", 1500)]
    assert sub["next_invoice_amount"] == 1500
    assert user_has_active_plan(plans["customer"], pro)
    assert [p["product"] for p in client.get("/api/v1/users/me").json()["active_plans"]] == [pro.pk]
    assert mails(MessageKind.SUBSCRIPTION_STARTED) == 1

    advance(plans, 31)  # the first renewal is paid
    renewed = the_subscription(client)
    assert renewed["status"] == "active"
    assert renewed["latest_invoice"]["billing_reason"] == "subscription_cycle"
    assert renewed["latest_invoice"]["status"] == "paid"
    assert mails(MessageKind.SUBSCRIPTION_RENEWED) == 1

    stripe_customer = plans["stripe"].v1.subscriptions.retrieve(sub["id"]).customer
    emulator.control("POST", f"customers/{stripe_customer}/payment_method", {"card": "pm_card_chargeCustomerFail"})
    advance(plans, 29)  # the second renewal is declined
    due = the_subscription(client)
    assert due["status"] == "past_due"
    assert due["latest_invoice"]["status"] == "open"
    assert user_has_active_plan(plans["customer"], pro)  # access lasts while Stripe retries
    assert mails(MessageKind.SUBSCRIPTION_PAYMENT_FAILED) == 1
    dunning = OutgoingMessage.objects.get(kind=MessageKind.SUBSCRIPTION_PAYMENT_FAILED)
    assert due["latest_invoice"]["hosted_invoice_url"] in dunning.body_text

    portal = client.post("/api/v1/billing-portal", {"return_url": URLS["success_url"]}, format="json")
    assert portal.status_code == 201, portal.content
    saved = requests.post(
        portal.json()["url"],
        data={"action": "card", "payment_method": "pm_card_visa"},
        allow_redirects=False,
        timeout=5,
    )
    assert saved.status_code == 303
    webhooks_quiet(emulator)
    fixed = the_subscription(client)
    assert fixed["status"] == "active"
    assert fixed["latest_invoice"]["status"] == "paid"

    canceled = client.post(f"{SUBSCRIPTIONS}/{sub['id']}/cancel", {}, format="json")
    assert canceled.status_code == 200, canceled.content
    assert canceled.json()["cancel_at_period_end"] is True
    assert canceled.json()["next_invoice_amount"] is None
    assert user_has_active_plan(plans["customer"], pro)  # until the paid period ends
    advance(plans, 31)

    ended = the_subscription(client)
    assert ended["status"] == "canceled"
    assert not user_has_active_plan(plans["customer"], pro)
    assert client.get("/api/v1/users/me").json()["active_plans"] == []
    assert mails(MessageKind.SUBSCRIPTION_CANCELED) == 1
    assert mails(MessageKind.SUBSCRIPTION_STARTED) == 1
    assert mails(MessageKind.SUBSCRIPTION_PAYMENT_FAILED) == 1
    assert mails(MessageKind.SUBSCRIPTION_RENEWED) == 2  # the first renewal, and the retry the new card paid


def test_duplicated_and_shuffled_events_change_nothing(plans):
    plans["emulator"].control("POST", "webhooks", {"duplicate_ratio": 1.0, "shuffle": True})
    client, _ = subscribe(plans)
    advance(plans, 31)
    sub = the_subscription(client)
    client.post(f"{SUBSCRIPTIONS}/{sub['id']}/cancel", {}, format="json")
    advance(plans, 31)

    assert the_subscription(client)["status"] == "canceled"
    for kind in (MessageKind.SUBSCRIPTION_STARTED, MessageKind.SUBSCRIPTION_RENEWED, MessageKind.SUBSCRIPTION_CANCELED):
        assert mails(kind) == 1, kind


def test_a_trial_costs_nothing_and_warns_before_it_ends(plans):
    client, _ = subscribe(plans, "team")
    sub = the_subscription(client)
    assert sub["status"] == "trialing"
    assert sub["trial_end"] is not None

    advance(plans, 12)

    assert mails(MessageKind.SUBSCRIPTION_TRIAL_ENDING) == 1
    advance(plans, 3)
    assert the_subscription(client)["status"] == "active"


def test_an_upgrade_is_prorated_and_invoiced_at_once(plans):
    client, _ = subscribe(plans)
    sub = the_subscription(client)

    answer = client.post(
        f"{SUBSCRIPTIONS}/{sub['id']}/change",
        {"price": plans["plus"].pk, "proration": "always_invoice"},
        format="json",
    )

    assert answer.status_code == 200, answer.content
    assert [p["price"] for p in answer.json()["plans"]] == [plans["plus"].pk]
    assert answer.json()["latest_invoice"]["billing_reason"] == "subscription_update"
    assert answer.json()["next_invoice_amount"] == 4500


def test_the_same_plan_twice_is_refused(plans):
    client, _ = subscribe(plans)

    again = checkout_cart(client, [{"price": plans["pro"].pk, "quantity": 1}])

    assert again.status_code == 409
    assert "already subscribe" in again.json()["detail"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (lambda p: [{"price": p["pro"].pk, "quantity": 1}, {"price": p["teapot"].pk, "quantity": 1}], "not both"),
    ],
)
def test_a_cart_mixing_plans_and_one_off_prices_is_refused(plans, lines, message):
    answer = checkout_cart(client_for(plans["customer"]), lines(plans))

    assert answer.status_code == 400
    assert message in str(answer.json())


def test_only_the_owner_or_staff_may_cancel_and_only_staff_at_once(plans):
    client, _ = subscribe(plans)
    sub = the_subscription(client)

    at_once = client.post(f"{SUBSCRIPTIONS}/{sub['id']}/cancel", {"at_once": True}, format="json")
    staff = client_for(plans["staff"]).post(f"{SUBSCRIPTIONS}/{sub['id']}/cancel", {"at_once": True}, format="json")

    assert at_once.status_code == 403
    assert staff.status_code == 200, staff.content
    assert staff.json()["status"] == "canceled"
    assert re.fullmatch(r"sub_\w+", staff.json()["id"])
