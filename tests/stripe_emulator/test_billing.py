"""Subscriptions, invoices, test clocks and the portal: what time and the customer do to a subscription,
with the events Stripe sends, over HTTP through the official SDK."""

import re
from datetime import UTC, datetime
from urllib.parse import urljoin

import pytest
import requests
import stripe

from tests.stripe_emulator.sdk_types import shape_problems

START = int(datetime(2026, 1, 31, 12, tzinfo=UTC).timestamp())
DAY = 86400


@pytest.fixture
def plan(stripe_client):
    product = stripe_client.v1.products.create(params={"name": "Pro plan"})
    return stripe_client.v1.prices.create(
        params={"product": product.id, "currency": "eur", "unit_amount": 1500, "recurring": {"interval": "month"}}
    )


@pytest.fixture
def clock(stripe_client):
    return stripe_client.v1.test_helpers.test_clocks.create(params={"frozen_time": START})


@pytest.fixture
def customer(stripe_client, clock):
    return stripe_client.v1.customers.create(params={"email": "ada@example.com", "test_clock": clock.id})


def subscribe(emulator, stripe_client, customer, price, **subscription_data):
    params = {
        "mode": "subscription",
        "customer": customer.id,
        "line_items": [{"price": price.id, "quantity": 1}],
        "success_url": "https://shop.example/ok",
    }
    if subscription_data:
        params["subscription_data"] = subscription_data
    session = stripe_client.v1.checkout.sessions.create(params=params)
    emulator.complete_checkout(session.id)
    session = stripe_client.v1.checkout.sessions.retrieve(session.id)
    return session, stripe_client.v1.subscriptions.retrieve(session.subscription)


def advance(stripe_client, clock, days: float) -> None:
    current = stripe_client.v1.test_helpers.test_clocks.retrieve(clock.id)
    stripe_client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": current.frozen_time + int(days * DAY)}
    )


def event_types(stripe_client) -> list[str]:
    """The types of the latest 100 events, oldest first."""
    events = stripe_client.v1.events.list(params={"limit": 100}).data
    return [event.type for event in reversed(events)]


def invoices(stripe_client, sub) -> list:
    return list(reversed(stripe_client.v1.invoices.list(params={"subscription": sub.id}).data))


def test_checkout_in_subscription_mode_starts_a_paid_subscription(emulator, stripe_client, customer, plan):
    session, sub = subscribe(emulator, stripe_client, customer, plan)

    assert session.mode == "subscription"
    assert (session.status, session.payment_status, session.amount_total) == ("complete", "paid", 1500)
    assert sub.status == "active"
    assert sub.customer == customer.id
    item = sub["items"].data[0]
    assert item.price.id == plan.id
    assert (item.current_period_start, item.current_period_end) == (START, START + 28 * DAY)  # Jan 31 -> Feb 28
    first = stripe_client.v1.invoices.retrieve(sub.latest_invoice)
    assert (first.status, first.amount_paid, first.billing_reason) == ("paid", 1500, "subscription_create")
    assert first.parent.subscription_details.subscription == sub.id
    assert first.hosted_invoice_url.endswith(f"/i/{first.id}")
    types = event_types(stripe_client)
    assert types.index("customer.subscription.created") < types.index("invoice.paid")
    assert types.index("invoice.paid") < types.index("checkout.session.completed")


def test_a_trial_costs_nothing_now_and_warns_three_days_before_it_ends(emulator, stripe_client, customer, plan):
    session, sub = subscribe(emulator, stripe_client, customer, plan, trial_period_days=14)

    assert (session.amount_total, session.payment_status) == (0, "no_payment_required")
    assert (sub.status, sub.trial_end) == ("trialing", START + 14 * DAY)
    advance(stripe_client, clock=stripe_client.v1.test_helpers.test_clocks.retrieve(customer.test_clock), days=11)
    assert event_types(stripe_client)[-1] == "test_helpers.test_clock.ready"
    assert "customer.subscription.trial_will_end" in event_types(stripe_client)
    advance(stripe_client, stripe_client.v1.test_helpers.test_clocks.retrieve(customer.test_clock), days=4)

    sub = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert sub.status == "active"
    renewal = invoices(stripe_client, sub)[-1]
    assert (renewal.billing_reason, renewal.amount_paid) == ("subscription_cycle", 1500)


def test_a_month_later_the_renewal_is_invoiced_and_paid(emulator, stripe_client, clock, customer, plan):
    _, sub = subscribe(emulator, stripe_client, customer, plan)

    advance(stripe_client, clock, days=29)

    sub = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert sub["items"].data[0].current_period_start == START + 28 * DAY
    assert [(i.billing_reason, i.status, i.amount_paid) for i in invoices(stripe_client, sub)] == [
        ("subscription_create", "paid", 1500),
        ("subscription_cycle", "paid", 1500),
    ]
    assert "invoice.upcoming" in event_types(stripe_client)


def test_a_declining_card_makes_the_subscription_past_due_then_retries_then_cancels(
    emulator, stripe_client, clock, customer, plan
):
    _, sub = subscribe(emulator, stripe_client, customer, plan)
    emulator.control("POST", f"customers/{customer.id}/payment_method", {"card": "pm_card_chargeCustomerFail"})

    advance(stripe_client, clock, days=28)
    sub = stripe_client.v1.subscriptions.retrieve(sub.id)
    renewal = invoices(stripe_client, sub)[-1]
    assert sub.status == "past_due"
    assert (renewal.status, renewal.attempt_count, renewal.next_payment_attempt) == ("open", 1, START + 31 * DAY)

    advance(stripe_client, clock, days=7)  # the retries on days 3, 5 and 7 fail too
    sub = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert sub.status == "canceled"
    assert sub.cancellation_details.reason == "payment_failed"
    assert stripe_client.v1.invoices.retrieve(renewal.id).attempt_count == 4
    assert event_types(stripe_client).count("invoice.payment_failed") == 4


def test_a_card_saved_in_the_portal_pays_what_is_open(emulator, stripe_client, clock, customer, plan):
    _, sub = subscribe(emulator, stripe_client, customer, plan)
    emulator.control("POST", f"customers/{customer.id}/payment_method", {"card": "pm_card_chargeCustomerFail"})
    advance(stripe_client, clock, days=28)
    portal = stripe_client.v1.billing_portal.sessions.create(
        params={"customer": customer.id, "return_url": "https://shop.example/account"}
    )

    page = requests.get(portal.url, timeout=5)
    saved = requests.post(
        portal.url, data={"action": "card", "payment_method": "pm_card_visa"}, allow_redirects=False, timeout=5
    )

    assert page.status_code == 200
    assert "past_due" in page.text
    assert saved.status_code == 303
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "active"
    assert invoices(stripe_client, sub)[-1].status == "paid"


def test_cancel_at_period_end_ends_the_subscription_when_the_period_does(
    emulator, stripe_client, clock, customer, plan
):
    _, sub = subscribe(emulator, stripe_client, customer, plan)

    stripe_client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    advance(stripe_client, clock, days=27)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "active"
    advance(stripe_client, clock, days=2)

    sub = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert (sub.status, sub.ended_at) == ("canceled", START + 28 * DAY)
    assert len(invoices(stripe_client, sub)) == 1
    assert event_types(stripe_client).count("customer.subscription.deleted") == 1


def test_an_upgrade_is_prorated_for_the_rest_of_the_period(emulator, stripe_client, clock, customer, plan):
    bigger = stripe_client.v1.prices.create(
        params={"product": plan.product, "currency": "eur", "unit_amount": 4500, "recurring": {"interval": "month"}}
    )
    _, sub = subscribe(emulator, stripe_client, customer, plan)
    advance(stripe_client, clock, days=14)  # half of February's 28 days

    item = sub["items"].data[0]
    stripe_client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": item.id, "price": bigger.id}], "proration_behavior": "always_invoice"}
    )

    sub = stripe_client.v1.subscriptions.retrieve(sub.id)
    proration = invoices(stripe_client, sub)[-1]
    assert sub["items"].data[0].price.id == bigger.id
    assert proration.billing_reason == "subscription_update"
    assert [line.amount for line in proration.lines.data] == [-750, 2250]
    assert (proration.status, proration.amount_paid) == ("paid", 1500)


def test_the_portals_login_page_opens_the_portal_where_a_plan_is_canceled_and_kept(
    emulator, stripe_client, customer, plan
):
    _, sub = subscribe(emulator, stripe_client, customer, plan)
    configuration = stripe_client.v1.billing_portal.configurations.list(params={"is_default": True}).data[0]
    login = configuration.login_page.url

    page = requests.get(login, timeout=5)
    stranger = requests.post(login, data={"email": "nobody@example.com"}, allow_redirects=False, timeout=5)
    logged_in = requests.post(login, data={"email": "Ada@example.com"}, allow_redirects=False, timeout=5)
    portal = urljoin(login, logged_in.headers["Location"])
    listed = requests.get(portal, timeout=5)
    form = {"subscription": sub.id}
    canceled = requests.post(portal, data={**form, "action": "cancel"}, allow_redirects=False, timeout=5)
    ending = stripe_client.v1.subscriptions.retrieve(sub.id)
    kept = requests.post(portal, data={**form, "action": "renew"}, allow_redirects=False, timeout=5)

    assert configuration.login_page.enabled is True
    assert page.status_code == 200
    assert stranger.status_code == 400
    assert logged_in.status_code == 303
    assert stripe_client.v1.invoices.retrieve(sub.latest_invoice).number in listed.text
    assert "renews 2026-02-28" in listed.text
    assert (canceled.status_code, kept.status_code) == (303, 303)
    assert (ending.cancel_at_period_end, ending.cancel_at) == (True, START + 28 * DAY)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end is False
    assert event_types(stripe_client)[-2:] == ["customer.subscription.updated", "customer.subscription.updated"]


def test_a_downgrade_is_credited_on_the_next_invoice(emulator, stripe_client, clock, customer, plan):
    cheaper = stripe_client.v1.prices.create(
        params={"product": plan.product, "currency": "eur", "unit_amount": 500, "recurring": {"interval": "month"}}
    )
    _, sub = subscribe(emulator, stripe_client, customer, plan)
    advance(stripe_client, clock, days=21)  # a quarter of February's 28 days is left

    item = sub["items"].data[0]
    stripe_client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": item.id, "price": cheaper.id}], "proration_behavior": "create_prorations"}
    )
    assert len(invoices(stripe_client, sub)) == 1  # nothing invoiced now
    advance(stripe_client, clock, days=7)

    renewal = invoices(stripe_client, sub)[-1]
    assert renewal.billing_reason == "subscription_cycle"
    assert [(line.amount, line.parent.subscription_item_details.proration) for line in renewal.lines.data] == [
        (500, False),
        (-375, True),
        (125, True),
    ]
    assert (renewal.amount_due, renewal.amount_paid, renewal.status) == (250, 250, "paid")


def test_subscription_objects_pass_the_sdks_type_check(emulator, stripe_client, customer, plan):
    session, sub = subscribe(emulator, stripe_client, customer, plan)
    portal = stripe_client.v1.billing_portal.sessions.create(params={"customer": customer.id})
    clock = stripe_client.v1.test_helpers.test_clocks.retrieve(customer.test_clock)

    assert shape_problems(sub.to_dict(), stripe.Subscription) == []
    assert shape_problems(stripe_client.v1.invoices.retrieve(sub.latest_invoice).to_dict(), stripe.Invoice) == []
    assert shape_problems(portal.to_dict(), stripe.billing_portal.Session) == []
    assert shape_problems(clock.to_dict(), stripe.test_helpers.TestClock) == []
    configuration = stripe_client.v1.billing_portal.configurations.list().data[0]
    assert shape_problems(configuration.to_dict(), stripe.billing_portal.Configuration) == []
    assert shape_problems(session.to_dict(), stripe.checkout.Session) == []


def test_subscription_mode_refuses_what_stripe_refuses(stripe_client, customer, plan):
    weekly = stripe_client.v1.prices.create(
        params={"product": plan.product, "currency": "eur", "unit_amount": 500, "recurring": {"interval": "week"}}
    )
    base = {"mode": "subscription", "customer": customer.id, "success_url": "https://shop.example/ok"}

    with pytest.raises(stripe.InvalidRequestError, match="different billing intervals"):
        stripe_client.v1.checkout.sessions.create(
            params={**base, "line_items": [{"price": plan.id, "quantity": 1}, {"price": weekly.id, "quantity": 1}]}
        )
    one_off = stripe_client.v1.prices.create(params={"product": plan.product, "currency": "eur", "unit_amount": 9})
    with pytest.raises(stripe.InvalidRequestError, match="recurring price in `subscription` mode"):
        stripe_client.v1.checkout.sessions.create(params={**base, "line_items": [{"price": one_off.id, "quantity": 1}]})


def test_a_payment_link_of_a_plan_opens_subscription_sessions(emulator, stripe_client, plan):
    link = stripe_client.v1.payment_links.create(
        params={"line_items": [{"price": plan.id, "quantity": 1}], "subscription_data": {"trial_period_days": 7}}
    )

    opened = requests.get(link.url, allow_redirects=False, timeout=5)
    session_id = re.search(r"/c/pay/(cs_test_\w+)", opened.headers["Location"])[1]
    emulator.complete_checkout(session_id)

    session = stripe_client.v1.checkout.sessions.retrieve(session_id)
    assert (session.mode, session.payment_link) == ("subscription", link.id)
    assert stripe_client.v1.subscriptions.retrieve(session.subscription).status == "trialing"


# The top-level fields of Stripe's own examples at the pinned API version (as in test_object_shapes); an
# invoice's example also names `subscription`, which the SDK's class at this version no longer has: the
# emulator follows the SDK, and says the subscription in `parent.subscription_details`.
BILLING_FIELDS = {
    "subscription": """
        application application_fee_percent automatic_tax billing_cycle_anchor billing_cycle_anchor_config
        billing_mode billing_schedules billing_thresholds cancel_at cancel_at_period_end canceled_at
        cancellation_details collection_method created currency customer customer_account days_until_due
        default_payment_method default_source default_tax_rates description discounts ended_at id
        invoice_settings items latest_invoice livemode managed_payments metadata next_pending_invoice_item_invoice
        object on_behalf_of pause_collection payment_settings pending_invoice_item_interval pending_setup_intent
        pending_update schedule start_date status test_clock transfer_data trial_end trial_settings trial_start
    """,
    "subscription_item": """
        billing_thresholds created current_period_end current_period_start discounts id metadata object plan
        price quantity subscription tax_rates
    """,
    "invoice": """
        account_country account_name account_tax_ids amount_due amount_overpaid amount_paid amount_remaining
        amount_shipping application attempt_count attempted auto_advance automatic_tax automatically_finalizes_at
        billing_reason collection_method created currency custom_fields customer customer_account
        customer_address customer_email customer_name customer_phone customer_shipping customer_tax_exempt
        customer_tax_ids default_payment_method default_source default_tax_rates description discounts due_date
        effective_at ending_balance footer from_invoice hosted_invoice_url id invoice_pdf issuer
        last_finalization_error latest_revision lines livemode metadata next_payment_attempt number object
        on_behalf_of parent payment_settings period_end period_start post_payment_credit_notes_amount
        pre_payment_credit_notes_amount receipt_number rendering shipping_cost shipping_details starting_balance
        statement_descriptor status status_transitions subtotal subtotal_excluding_tax test_clock total
        total_discount_amounts total_excluding_tax total_pretax_credit_amounts total_taxes webhooks_delivered_at
    """,
    "line_item": """
        amount currency description discount_amounts discountable discounts id invoice livemode metadata object
        parent period pretax_credit_amounts pricing quantity quantity_decimal subscription subtotal taxes
    """,
    "test_helpers.test_clock": "created deletes_after frozen_time id livemode name object status status_details",
    "billing_portal.session": """
        configuration created customer customer_account flow id livemode locale object on_behalf_of return_url url
    """,
}


def test_billing_objects_carry_the_fields_of_stripes_examples(emulator, stripe_client, customer, plan):
    _, sub = subscribe(emulator, stripe_client, customer, plan)
    invoice = stripe_client.v1.invoices.retrieve(sub.latest_invoice)
    found = {
        "subscription": sub,
        "subscription_item": sub["items"].data[0],
        "invoice": invoice,
        "line_item": invoice.lines.data[0],
        "test_helpers.test_clock": stripe_client.v1.test_helpers.test_clocks.retrieve(customer.test_clock),
        "billing_portal.session": stripe_client.v1.billing_portal.sessions.create(params={"customer": customer.id}),
    }

    for kind, obj in found.items():
        assert obj.object == kind
        assert set(obj.to_dict()) == set(BILLING_FIELDS[kind].split()), kind
