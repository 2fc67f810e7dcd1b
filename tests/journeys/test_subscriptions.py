"""Plans sold, renewed, dunned and canceled, over HTTP: checkout, Stripe's events on a real worker, the
subscriptions API, the portal, mail, and time moved by a Stripe test clock."""

import re
import threading
import time
from urllib.parse import urljoin

import pytest
import requests
import stripe
from django.db import connection, transaction
from djstripe.models import Invoice, SubscriptionItem
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from apps.catalog import services as catalog
from apps.catalog.models import Product
from apps.mail.models import MessageKind, OutgoingMessage
from apps.payments.billing import store
from apps.payments.billing.locks import storing_state
from apps.payments.billing.outcomes import BillingOutcome
from apps.payments.billing.permissions import plan_required
from apps.payments.billing.selectors import user_has_active_plan
from apps.payments.mirror.models import MirrorKind, MirrorRecord
from apps.payments.orders.models import Order
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from apps.users import services as users
from tests.helpers import client_for
from tests.payments.helpers import PASSWORD, URLS, checkout_cart, settled, wait_until, webhooks_quiet
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


@pytest.mark.parametrize(
    "delivery",
    [{}, {"duplicate_ratio": 1.0, "shuffle": True}],
    ids=["events_in_order", "events_duplicated_and_shuffled"],
)
def test_a_plan_lives_through_renewal_dunning_a_new_card_and_cancellation(plans, delivery):
    """A plan's whole life: subscribe, renew, decline, fix the card in the portal, cancel; the same
    again when Stripe sends every event twice and out of order."""
    emulator = plans["emulator"]
    if delivery:
        emulator.control("POST", "webhooks", delivery)
    pro = Product.objects.get(name="Pro")
    client, started = subscribe(plans)

    assert started["mode"] == "subscription"
    assert started["order"] is None
    sub = the_subscription(client)
    assert sub["status"] == "active"
    assert [(p["price"], p["product_name"], p["unit_amount"]) for p in sub["plans"]] == [(plans["pro"].pk, "Pro", 1500)]
    assert sub["next_invoice_amount"] == 1500
    assert sub["current_period_end"].startswith("2026-02-01")
    assert user_has_active_plan(plans["customer"], pro)
    assert [p["product"] for p in client.get("/api/v1/users/me").json()["active_plans"]] == [pro.pk]
    assert mails(MessageKind.SUBSCRIPTION_STARTED) == 1

    advance(plans, 31)  # the first renewal is paid
    renewed = the_subscription(client)
    assert renewed["status"] == "active"
    assert renewed["latest_invoice"]["billing_reason"] == "subscription_cycle"
    assert renewed["latest_invoice"]["status"] == "paid"
    assert (renewed["current_period_start"][:10], renewed["current_period_end"][:10]) == ("2026-02-01", "2026-03-01")
    assert mails(MessageKind.SUBSCRIPTION_RENEWED) == 1
    upcoming = WebhookEvent.objects.filter(type="invoice.upcoming", state=WebhookEventState.PROCESSED)
    assert {event.outcome.split(" renews ")[0] for event in upcoming} == {f"subscription {sub['id']}"}

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
    portal_login = re.search(r"update your card here \(we charge it at once\):\n(\S+)", dunning.body_text)[1]
    assert portal_login == plans["stripe"].v1.billing_portal.configurations.list().data[0].login_page.url

    portal = client.post("/api/v1/billing-portal", {"return_url": URLS["success_url"]}, format="json")
    assert portal.status_code == 201, portal.content
    assert "past_due" in requests.get(portal.json()["url"], timeout=5).text
    # The customer follows the mail's link instead: the portal's login page, then their portal.
    logged_in = requests.post(portal_login, data={"email": "ada@example.com"}, allow_redirects=False, timeout=5)
    assert logged_in.status_code == 303
    saved = requests.post(
        urljoin(portal_login, logged_in.headers["Location"]),
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
    stored = Invoice.objects.filter(subscription__id=sub["id"]).order_by("created")
    assert [(i.stripe_data["billing_reason"], i.stripe_data["status"]) for i in stored] == [
        ("subscription_create", "paid"),
        ("subscription_cycle", "paid"),
        ("subscription_cycle", "paid"),  # declined, then paid by the new card
    ]
    assert SubscriptionItem.objects.filter(subscription__id=sub["id"]).count() == 1
    assert mails(MessageKind.SUBSCRIPTION_CANCELED) == 1
    assert mails(MessageKind.SUBSCRIPTION_STARTED) == 1
    assert mails(MessageKind.SUBSCRIPTION_PAYMENT_FAILED) == 1
    assert mails(MessageKind.SUBSCRIPTION_RENEWED) == 2  # the first renewal, and the retry the new card paid
    assert mails(MessageKind.SUBSCRIPTION_TRIAL_ENDING) == 0


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
    resumed = client.post(f"{SUBSCRIPTIONS}/{sub_id}/resume", {}, format="json")
    assert resumed.json()["cancel_at_period_end"] is False
    assert resumed.json()["next_invoice_amount"] == 1500
    assert stripe_subscriptions.retrieve(sub_id).cancel_at_period_end is False

    for price in ("plus", "pro", "plus"):
        answer = client.post(f"{SUBSCRIPTIONS}/{sub_id}/change", {"price": plans[price].pk}, format="json")
        assert answer.status_code == 200, answer.content
    webhooks_quiet(plans["emulator"])

    in_stripe = stripe_subscriptions.retrieve(sub_id)["items"].data[0].price.id
    assert [p["stripe_price"] for p in the_subscription(client)["plans"]] == [in_stripe]
    assert the_subscription(client)["plans"][0]["price"] == plans["plus"].pk


def test_a_change_never_waits_for_a_worker_storing_the_subscription(plans):
    """A drain is storing the subscription (it holds its lock until its event commits, which may be after a
    Stripe call): the plan change is made and answered at once, and a worker stores it once the drain is done."""
    client, _ = subscribe(plans)
    sub_id = the_subscription(client)["id"]
    webhooks_quiet(plans["emulator"])
    storing, done = threading.Event(), threading.Event()

    def drain_storing() -> None:
        try:
            with storing_state(sub_id):
                storing.set()
                done.wait(10)
        finally:
            connection.close()

    drain = threading.Thread(target=drain_storing)
    drain.start()
    assert storing.wait(5)
    started = time.monotonic()
    answer = client.post(f"{SUBSCRIPTIONS}/{sub_id}/change", {"price": plans["plus"].pk}, format="json")
    answered_in = time.monotonic() - started
    done.set()
    drain.join(10)

    assert (answer.status_code, answered_in < 2) == (200, True), answer.content
    assert [plan["price"] for plan in answer.json()["plans"]] == [plans["plus"].pk]  # Stripe's answer
    assert answer.json()["latest_invoice"]["billing_reason"] == "subscription_update"  # the upgrade, charged now
    wait_until(
        lambda: the_subscription(client)["plans"][0]["price"] == plans["plus"].pk,
        message="a worker to store the change",
    )


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

    with storing_state(sub_id):
        kept = store.subscription_store(
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


def yearly(plans):
    with transaction.atomic():
        return catalog.price_create(
            product=Product.objects.get(name="Team"), unit_amount=99000, currency="eur", recurring_interval="year"
        )


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (lambda p: [{"price": p["pro"].pk, "quantity": 1}, {"price": p["teapot"].pk, "quantity": 1}], "not both"),
        (lambda p: [{"price": p["pro"].pk, "quantity": 1}, {"price": yearly(p).pk, "quantity": 1}], "bill as often"),
    ],
)
def test_a_cart_mixing_plans_and_one_off_prices_or_billing_periods_is_refused(plans, lines, message):
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
    days = {"date_from": "2026-02-01", "date_to": "2026-02-02"}
    stats = client_for(plans["staff"]).get("/api/v1/payments/stats", days).json()["subscriptions"]
    assert (stats["past_due"], stats["active"]) == (1, 0)
    advance(plans, 8)  # and so do the retries 3, 5 and 7 days later

    ended = the_subscription(client)
    assert ended["status"] == "canceled"
    assert ended["latest_invoice"]["attempt_count"] == 4
    assert not user_has_active_plan(plans["customer"], Product.objects.get(name="Pro"))
    assert mails(MessageKind.SUBSCRIPTION_PAYMENT_FAILED) == 1  # one per invoice, however often Stripe retries
    assert mails(MessageKind.SUBSCRIPTION_CANCELED) == 1


def _a_renewal_failed(plans) -> tuple:
    """A subscriber whose first renewal failed: their client, the subscription, its open invoice and the URL of
    their billing portal."""
    client, _ = subscribe(plans)
    sub_id = the_subscription(client)["id"]
    stripe_customer = plans["stripe"].v1.subscriptions.retrieve(sub_id).customer
    plans["emulator"].control(
        "POST", f"customers/{stripe_customer}/payment_method", {"card": "pm_card_chargeCustomerFail"}
    )
    advance(plans, 32)  # the renewal fails: the invoice is open
    invoice_id = the_subscription(client)["latest_invoice"]["id"]
    portal = client.post("/api/v1/billing-portal", {"return_url": URLS["success_url"]}, format="json").json()["url"]
    return client, sub_id, invoice_id, portal


def test_an_invoice_fetched_while_open_is_never_stored_over_its_payment(plans):
    """Two drains at once: one applies the failed renewal, the other the payment a new card just made.
    However their fetches interleave, the invoice ends paid here as in Stripe."""
    emulator = plans["emulator"]
    client, sub_id, invoice_id, portal = _a_renewal_failed(plans)
    emulator.control("POST", "webhooks", {"paused": True})  # only the two drains below apply events
    outcomes = []

    def failed_payment_drain():
        try:
            outcomes.append(
                store.invoice_apply(
                    invoice_id, "invoice.payment_failed", subscription_id=sub_id, cause="a late payment_failed"
                )
            )
        finally:
            connection.close()

    late = threading.Thread(target=failed_payment_drain)
    with storing_state(sub_id):  # the drain of invoice.paid is storing the subscription
        late.start()
        time.sleep(1)  # the other drain has started and waits
        paid = requests.post(portal, data={"action": "card", "payment_method": "pm_card_visa"}, timeout=5)
        assert paid.status_code == 200
        store.invoice_refresh(invoice_id, subscription_id=sub_id, cause="invoice.paid", subscription_too=True)
    late.join(30)

    assert outcomes == [BillingOutcome.INVOICE_STORED.of(invoice=invoice_id, status="paid")]
    assert the_subscription(client)["latest_invoice"]["status"] == "paid"
    assert the_subscription(client)["status"] == "active"
    emulator.control("POST", "webhooks", {"paused": False})
    webhooks_quiet(emulator)
    assert the_subscription(client)["latest_invoice"]["status"] == "paid"


def test_an_older_open_answer_about_a_paid_invoice_tells_nobody_their_payment_failed(plans, monkeypatch):
    """Stripe answering an older state than the one kept here (its reads may lag; the emulator's never do):
    the invoice stays paid and the late payment_failed is applied as what is kept, a paid invoice."""
    emulator = plans["emulator"]
    client, sub_id, invoice_id, portal = _a_renewal_failed(plans)
    open_answer = plans["stripe"].v1.invoices.retrieve(invoice_id)
    assert requests.post(portal, data={"action": "card", "payment_method": "pm_card_visa"}, timeout=5).ok
    webhooks_quiet(emulator)
    assert the_subscription(client)["latest_invoice"]["status"] == "paid"
    monkeypatch.setattr(stripe.InvoiceService, "retrieve", lambda *args, **kwargs: open_answer)

    outcome = store.invoice_apply(
        invoice_id, "invoice.payment_failed", subscription_id=sub_id, cause="a payment_failed read from a lagging copy"
    )

    assert outcome == BillingOutcome.INVOICE_STORED.of(invoice=invoice_id, status="paid")  # not asked to pay again
    assert the_subscription(client)["latest_invoice"]["status"] == "paid"


def test_a_renewal_the_bank_wants_confirmed_asks_the_customer_to_confirm_it(plans):
    client, _ = subscribe(plans)
    sub = the_subscription(client)
    stripe_customer = plans["stripe"].v1.subscriptions.retrieve(sub["id"]).customer
    plans["emulator"].control(
        "POST", f"customers/{stripe_customer}/payment_method", {"card": "pm_card_authenticationRequired"}
    )

    advance(plans, 32)  # the renewal on day 31 needs 3D Secure

    due = the_subscription(client)
    assert (due["status"], due["latest_invoice"]["status"]) == ("past_due", "open")
    asking = OutgoingMessage.objects.get(kind=MessageKind.SUBSCRIPTION_PAYMENT_FAILED)
    assert asking.subject == "Confirm your payment for Pro"
    assert f"confirm the payment here:\n{due['latest_invoice']['hosted_invoice_url']}" in asking.body_text
    assert "another card" not in asking.body_text
    assert WebhookEvent.objects.get(type="invoice.payment_action_required").outcome == (
        f"invoice {due['latest_invoice']['id']} for the customer to confirm after 1 attempt(s)"
    )


def test_a_cancel_stripe_refuses_for_good_is_an_answer_and_changes_nothing(plans, monkeypatch):
    client, _ = subscribe(plans)
    sub = the_subscription(client)

    def refused(self, *args, **kwargs):
        raise stripe.PermissionError("The provided key does not have the rights to cancel.", http_status=403)

    monkeypatch.setattr(stripe.SubscriptionService, "cancel", refused)
    answer = client_for(plans["staff"]).post(f"{SUBSCRIPTIONS}/{sub['id']}/cancel", {"at_once": True}, format="json")

    assert answer.status_code == 502, answer.content
    assert answer.json()["detail"] == "The payment provider refused the request; nothing was changed."
    assert the_subscription(client)["status"] == "active"


def test_staff_filter_subscriptions_and_a_customer_sees_only_their_own(plans):
    ada, _ = subscribe(plans)
    ada_sub = the_subscription(ada)
    bo_user = users.user_create(email="bo@example.com", password=PASSWORD, name="Bo")
    wait_until(settled, message="Bo in Stripe")
    bo = client_for(bo_user)
    started = checkout_cart(bo, [{"price": plans["team"].pk, "quantity": 1}])
    plans["emulator"].complete_checkout(started.json()["session_id"])
    webhooks_quiet(plans["emulator"])
    bo_sub = the_subscription(bo)
    staff = client_for(plans["staff"])
    staff.post(f"{SUBSCRIPTIONS}/{ada_sub['id']}/cancel", {"at_once": True}, format="json")

    def ids(client, **query):
        answer = client.get(SUBSCRIPTIONS, query)
        assert answer.status_code == 200, answer.content
        return [s["id"] for s in answer.json()["results"]]

    assert sorted(ids(staff)) == sorted([ada_sub["id"], bo_sub["id"]])
    assert ids(staff, status="canceled") == [ada_sub["id"]]
    assert ids(staff, status="trialing") == [bo_sub["id"]]
    assert ids(staff, product=Product.objects.get(name="Team").pk) == [bo_sub["id"]]
    assert ids(staff, email="ada@example.com") == [ada_sub["id"]]
    assert ids(staff, user=bo_user.pk) == [bo_sub["id"]]
    assert ids(ada, user=bo_user.pk) == []
    assert ids(ada, status="trialing") == []
