"""Plans sold, renewed, dunned and canceled, over HTTP: checkout, Stripe's events on a real worker, the
subscriptions API, the portal, mail, and time moved by a Stripe test clock."""

import re

import pytest
import requests
import stripe
from django.db import transaction
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from apps.catalog import services as catalog
from apps.catalog.models import Product
from apps.mail.models import MessageKind, OutgoingMessage
from apps.payments.models import MirrorKind, MirrorRecord, Order
from apps.payments.orders import subscriptions
from apps.payments.permissions import plan_required
from apps.payments.plans import user_has_active_plan
from tests.helpers import client_for
from tests.payments.helpers import URLS, checkout_cart, settled, wait_until, webhooks_quiet
from tests.users.factories import UserFactory

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


def test_an_upgrade_is_charged_now_and_only_staff_choose_another_proration(plans):
    client, _ = subscribe(plans)
    sub = the_subscription(client)
    change = f"{SUBSCRIPTIONS}/{sub['id']}/change"

    free_ride = client.post(change, {"price": plans["plus"].pk, "proration": "none"}, format="json")
    answer = client.post(change, {"price": plans["plus"].pk}, format="json")

    assert free_ride.status_code == 403
    assert answer.status_code == 200, answer.content
    assert [p["price"] for p in answer.json()["plans"]] == [plans["plus"].pk]
    assert answer.json()["latest_invoice"]["billing_reason"] == "subscription_update"
    assert answer.json()["latest_invoice"]["status"] == "paid"
    assert answer.json()["next_invoice_amount"] == 4500


def test_changing_back_and_forth_is_never_a_replay_of_an_earlier_change(plans):
    """Each request is its own change in Stripe: cancel, resume, cancel again ends as canceled; a plan
    changed to Plus, back to Pro and to Plus again is Plus in Stripe as here."""
    client, _ = subscribe(plans)
    sub_id = the_subscription(client)["id"]
    stripe_subscriptions = plans["stripe"].v1.subscriptions

    for path in ("cancel", "resume", "cancel"):
        assert client.post(f"{SUBSCRIPTIONS}/{sub_id}/{path}", {}, format="json").status_code == 200
    assert stripe_subscriptions.retrieve(sub_id).cancel_at_period_end is True
    client.post(f"{SUBSCRIPTIONS}/{sub_id}/resume", {}, format="json")

    for price in ("plus", "pro", "plus"):
        answer = client.post(f"{SUBSCRIPTIONS}/{sub_id}/change", {"price": plans[price].pk}, format="json")
        assert answer.status_code == 200, answer.content
    webhooks_quiet(plans["emulator"])

    in_stripe = stripe_subscriptions.retrieve(sub_id)["items"].data[0].price.id
    assert [p["stripe_price"] for p in the_subscription(client)["plans"]] == [in_stripe]
    assert the_subscription(client)["plans"][0]["price"] == plans["plus"].pk


def test_a_trial_is_given_once_per_user_and_product(plans):
    client, _ = subscribe(plans, "team")
    first = the_subscription(client)
    client_for(plans["staff"]).post(f"{SUBSCRIPTIONS}/{first['id']}/cancel", {"at_once": True}, format="json")

    subscribe(plans, "team")

    second = [s for s in client.get(SUBSCRIPTIONS).json()["results"] if s["id"] != first["id"]]
    assert first["status"] == "trialing"
    assert (second[0]["status"], second[0]["trial_end"]) == ("active", None)


def test_a_second_checkout_of_the_same_plan_closes_the_first(plans):
    client = client_for(plans["customer"])
    monthly = [{"price": plans["pro"].pk, "quantity": 1}]
    first = checkout_cart(client, monthly).json()
    second = checkout_cart(client, monthly, success_url="https://shop.example/welcome").json()

    assert first["session_id"] != second["session_id"]
    assert plans["stripe"].v1.checkout.sessions.retrieve(first["session_id"]).status == "expired"
    assert plans["stripe"].v1.checkout.sessions.retrieve(second["session_id"]).status == "open"


def test_a_stale_answer_never_revives_a_canceled_subscription(plans):
    client, _ = subscribe(plans)
    sub_id = the_subscription(client)["id"]
    live = plans["stripe"].v1.subscriptions.retrieve(sub_id).to_dict()
    client_for(plans["staff"]).post(f"{SUBSCRIPTIONS}/{sub_id}/cancel", {"at_once": True}, format="json")

    with subscriptions.one_at_a_time(sub_id):
        kept = subscriptions.subscription_store(
            stripe.Subscription.construct_from(live, plans["emulator"].api_key), cause="a drain that fetched earlier"
        )

    assert kept.stripe_data["status"] == "canceled"
    assert the_subscription(client)["status"] == "canceled"


def test_no_trial_warning_for_a_trial_that_ends_the_subscription(plans):
    client, _ = subscribe(plans, "team")
    client.post(f"{SUBSCRIPTIONS}/{the_subscription(client)['id']}/cancel", {}, format="json")

    advance(plans, 12)

    assert mails(MessageKind.SUBSCRIPTION_TRIAL_ENDING) == 0


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


def test_stats_count_plans_by_status_with_their_monthly_revenue_and_churn(plans):
    client, _ = subscribe(plans)
    staff = client_for(plans["staff"])
    # Stripe dates the subscription by the customer's test clock: the first days of 2026.
    clock_days = {"date_from": "2026-01-01", "date_to": "2026-01-02"}
    before = staff.get("/api/v1/payments/stats", clock_days).json()["subscriptions"]
    sub = the_subscription(client)

    staff.post(f"{SUBSCRIPTIONS}/{sub['id']}/cancel", {"at_once": True}, format="json")
    after = staff.get("/api/v1/payments/stats", clock_days).json()["subscriptions"]

    assert (before["active"], before["mrr"], before["started"]) == (1, [{"currency": "eur", "amount": 1500}], 1)
    assert before["churned"] == 0
    assert (after["active"], after["mrr"], after["churned"]) == (0, [], 1)
    assert {"status": "canceled", "count": 1} in after["by_status"]


def test_a_view_guarded_by_plan_required_follows_the_subscription(plans):
    pro = Product.objects.get(name="Pro")

    class Reports(APIView):
        permission_classes = (IsAuthenticated, plan_required(product_id=pro.pk))

        def get(self, request):
            return Response({"ok": True})

    def ask():
        request = APIRequestFactory().get("/reports")
        force_authenticate(request, user=plans["customer"])
        return Reports.as_view()(request)

    refused = ask()
    client, _ = subscribe(plans)
    allowed = ask()
    client_for(plans["staff"]).post(f"{SUBSCRIPTIONS}/{the_subscription(client)['id']}/cancel", {"at_once": True})
    ended = ask()

    assert refused.status_code == 403
    assert refused.data["detail"] == "This needs an active subscription to Pro."
    assert allowed.status_code == 200
    assert ended.status_code == 403


def test_a_payment_link_of_a_plan_starts_a_subscription_that_gives_no_one_access(plans):
    emulator = plans["emulator"]
    link = client_for(plans["staff"]).post(
        "/api/v1/payment-links", {"lines": [{"price": plans["pro"].pk, "quantity": 1}]}, format="json"
    )
    assert link.status_code == 201, link.content

    # The payer types the email of a verified user of ours: that proves nothing about who pays.
    plans["customer"].email_verified = True
    plans["customer"].save()
    session = emulator.control(
        "POST", f"payment_links/{link.json()['payment_link_id']}/sessions", {"prefilled_email": "ada@example.com"}
    )
    emulator.complete_checkout(session["id"])
    webhooks_quiet(emulator)

    everyone = client_for(plans["staff"]).get(SUBSCRIPTIONS).json()["results"]
    assert [(s["status"], s["user"]) for s in everyone] == [("active", None)]
    assert not Order.objects.exists()
    assert not user_has_active_plan(plans["customer"], Product.objects.get(name="Pro"))


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("change", {}, "price"),
        ("change", {"price": "teapot"}, "price"),
        ("change", {"price": "pro", "proration": "sometimes"}, "proration"),
        ("cancel", {"at_once": "maybe"}, "at_once"),
    ],
)
def test_bad_subscription_requests_are_field_errors(plans, path, body, field):
    client, _ = subscribe(plans)
    sub = the_subscription(client)
    body = {key: plans[value].pk if value in ("teapot", "pro") else value for key, value in body.items()}

    answer = client.post(f"{SUBSCRIPTIONS}/{sub['id']}/{path}", body, format="json")

    assert answer.status_code == 400, answer.content
    assert field in answer.json()
    assert the_subscription(client)["status"] == "active"


def test_another_users_subscription_is_not_found_and_the_portal_returns_only_to_the_shop(plans):
    client, _ = subscribe(plans)
    sub = the_subscription(client)
    stranger = client_for(UserFactory())

    assert stranger.get(f"{SUBSCRIPTIONS}/{sub['id']}").status_code == 404
    assert stranger.post(f"{SUBSCRIPTIONS}/{sub['id']}/cancel", {}, format="json").status_code == 404
    portal = client.post("/api/v1/billing-portal", {"return_url": "https://evil.example/phish"}, format="json")
    assert portal.status_code == 400
    assert "return_url" in portal.json()
    intent = client.post(
        "/api/v1/payment-intents", {"lines": [{"price": plans["pro"].pk, "quantity": 1}]}, format="json"
    )
    assert intent.status_code == 400


def test_a_quarterly_plan_is_a_quarterly_price_in_stripe(plans):
    with transaction.atomic():
        quarterly = catalog.price_create(
            product=plans["pro"].product,
            unit_amount=4000,
            currency="eur",
            recurring_interval="month",
            recurring_interval_count=3,
        )
    wait_until(settled, message="the quarterly price in Stripe")

    stripe_id = MirrorRecord.objects.get(kind=MirrorKind.PRICE, object_id=quarterly.pk).stripe_id
    recurring = plans["stripe"].v1.prices.retrieve(stripe_id).recurring
    assert (recurring.interval, recurring.interval_count) == ("month", 3)


def test_when_the_retries_run_out_the_plan_ends_and_no_one_is_asked_to_pay_for_it(plans):
    client, _ = subscribe(plans)
    sub = the_subscription(client)
    stripe_customer = plans["stripe"].v1.subscriptions.retrieve(sub["id"]).customer
    plans["emulator"].control(
        "POST", f"customers/{stripe_customer}/payment_method", {"card": "pm_card_chargeCustomerFail"}
    )

    advance(plans, 32)  # the renewal on day 31 fails
    assert mails(MessageKind.SUBSCRIPTION_PAYMENT_FAILED) == 1
    advance(plans, 8)  # and so do the retries 3, 5 and 7 days later

    ended = the_subscription(client)
    assert ended["status"] == "canceled"
    assert ended["latest_invoice"]["attempt_count"] == 4
    assert not user_has_active_plan(plans["customer"], Product.objects.get(name="Pro"))
    assert mails(MessageKind.SUBSCRIPTION_PAYMENT_FAILED) == 1  # one per invoice, however often Stripe retries
    assert mails(MessageKind.SUBSCRIPTION_CANCELED) == 1
