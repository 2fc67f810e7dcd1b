"""Books that balance: `stripe_reconcile --money` compares paid orders, payments and refunds with Stripe's
charges, refunds and balance transactions, against the emulator, with drift made on purpose on either side."""

from io import StringIO

import pytest
import stripe
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.payments.orders import reconcile_money
from apps.payments.orders.models import BooksCheck, DriftKind, Order, OrderRefund, OrderStatus, Payment, PaymentStatus
from apps.payments.orders.tasks import reconcile_money_task
from tests.helpers import client_for
from tests.payments.factories import OrderFactory
from tests.payments.helpers import checkout_started, order_settles, webhooks_quiet

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _nothing_on_its_way(settings):
    """These tests wait for the webhooks themselves: the check may look up to this very moment."""
    settings.BOOKS_SETTLE_SECONDS = 0


def _stripe(emulator) -> stripe.StripeClient:
    return stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url}, max_network_retries=0)


def _paid_by_checkout(shop) -> Order:
    _, started = checkout_started(shop, quantity=1)
    shop["emulator"].complete_checkout(started["session_id"], "paid")
    return order_settles(started["order"], OrderStatus.PAID)


def _paid_by_app(shop) -> Order:
    answer = client_for(shop["customer"]).post(
        "/api/v1/payment-intents", {"lines": [{"price": shop["cup"].pk, "quantity": 2}]}, format="json"
    )
    started = answer.json()
    _stripe(shop["emulator"]).v1.payment_intents.confirm(
        started["payment_intent"], params={"payment_method": "pm_card_visa"}
    )
    return order_settles(started["order"], OrderStatus.PAID)


def _check(*args: str) -> str:
    out = StringIO()
    call_command("stripe_reconcile", "--money", "--since", timezone.localdate().isoformat(), *args, stdout=out)
    return out.getvalue()


def _drifts() -> list[tuple[str, str]]:
    check = BooksCheck.objects.order_by("-id").first()
    return sorted((drift.kind, drift.stripe_id) for drift in check.drifts.all())


def test_books_that_agree_say_so(shop):
    paid = _paid_by_checkout(shop)
    _paid_by_app(shop)
    refund = client_for(shop["staff"]).post(f"/api/v1/orders/{paid.pk}/refunds", {"amount": 500}, format="json")
    assert refund.status_code == 201
    webhooks_quiet(shop["emulator"])

    output = _check()

    assert "2 paid orders, 2 charges, 1 refunds compared" in output
    assert "Clean" in output
    assert client_for(shop["staff"]).get("/api/v1/payments/stats").json()["books"]["drift_count"] == 0


def test_a_dashboard_refund_whose_webhook_was_lost_and_a_charge_with_no_order_are_drift(shop):
    order = _paid_by_checkout(shop)
    webhooks_quiet(shop["emulator"])
    shop["emulator"].control("POST", "webhooks", {"paused": True})  # what Stripe sends now never arrives
    lost = _stripe(shop["emulator"]).v1.refunds.create(
        params={"payment_intent": order.payment_intent_id, "amount": 700}
    )
    stranger = _stripe(shop["emulator"]).v1.payment_intents.create(
        params={"amount": 1234, "currency": "eur", "confirm": True, "payment_method": "pm_card_visa"}
    )

    with pytest.raises(CommandError, match="2 difference"):
        _check()

    assert _drifts() == sorted(
        [(DriftKind.REFUND_NOT_RECORDED, lost.id), (DriftKind.ORDER_MISSING, stranger.latest_charge)]
    )
    stats = client_for(shop["staff"]).get("/api/v1/payments/stats").json()
    assert (stats["drift_count"], stats["books"]["drift_count"], stats["books"]["complete"]) == (2, 2, True)


def test_our_side_wrong_is_drift_too(shop):
    order = _paid_by_app(shop)
    webhooks_quiet(shop["emulator"])
    Order.objects.filter(pk=order.pk).update(amount_charged=order.amount_charged + 1)
    ghost = OrderFactory(paid=True, payment_intent_id="pi_neverMadeInStripe000000")
    OrderRefund.objects.create(order=order, stripe_refund_id="re_neverMadeInStripe000000", amount=100)

    with pytest.raises(CommandError, match="3 difference"):
        _check()

    assert _drifts() == sorted(
        [
            (DriftKind.AMOUNT_MISMATCH, _latest_charge(shop, order)),
            (DriftKind.CHARGE_MISSING, ghost.payment_intent_id),
            (DriftKind.REFUND_MISSING, "re_neverMadeInStripe000000"),
        ]
    )


def _latest_charge(shop, order: Order) -> str:
    return _stripe(shop["emulator"]).v1.payment_intents.retrieve(order.payment_intent_id).latest_charge


def test_stripe_is_read_page_by_page(shop, monkeypatch):
    monkeypatch.setattr(reconcile_money, "PAGE", 1)
    for _ in range(3):
        _paid_by_app(shop)
    webhooks_quiet(shop["emulator"])
    shop["emulator"].control("DELETE", "requests")

    assert "3 paid orders, 3 charges" in _check()
    pages = shop["emulator"].requests_seen(method="GET", path_prefix="/v1/charges")
    assert len(pages) == 3  # three pages of one; the third says there is no more


def test_the_nightly_task_checks_the_last_days(shop, settings):
    settings.BOOKS_CHECK_DAYS = 2
    _paid_by_checkout(shop)
    webhooks_quiet(shop["emulator"])

    assert reconcile_money_task() == 0

    check = BooksCheck.objects.get()
    assert (check.orders_checked, check.drift_count) == (1, 0)
    assert (timezone.now() - check.since).days == 2
    assert django_settings.CELERY_BEAT_SCHEDULE["books-check"]["task"] == "apps.payments.tasks.books_check_task"


def test_bad_days_are_refused_before_asking_stripe(mirror_on, db):
    with pytest.raises(CommandError, match="not a day"):
        call_command("stripe_reconcile", "--money", "--since", "yesterday")
    with pytest.raises(CommandError, match="after --until"):
        call_command("stripe_reconcile", "--money", "--since", "2026-02-02", "--until", "2026-02-01")
    with pytest.raises(CommandError, match="go with --money"):
        call_command("stripe_reconcile", "--since", "2026-02-02")
    assert not BooksCheck.objects.exists()


def test_money_stripe_took_for_an_order_not_paid_here_is_drift(shop):
    """The app paid, and the event that would have marked the order paid never came."""
    shop["emulator"].control("POST", "webhooks", {"paused": True})
    answer = client_for(shop["customer"]).post(
        "/api/v1/payment-intents", {"lines": [{"price": shop["cup"].pk, "quantity": 1}]}, format="json"
    )
    started = answer.json()
    paid = _stripe(shop["emulator"]).v1.payment_intents.confirm(
        started["payment_intent"], params={"payment_method": "pm_card_visa"}
    )

    with pytest.raises(CommandError, match="1 difference"):
        _check()

    assert _drifts() == [(DriftKind.CHARGED_UNPAID, paid.latest_charge)]
    assert Order.objects.get(pk=started["order"]).status == OrderStatus.PENDING


def test_what_stripe_did_a_moment_ago_is_not_drift_yet(shop, settings):
    settings.BOOKS_SETTLE_SECONDS = 900
    shop["emulator"].control("POST", "webhooks", {"paused": True})
    _stripe(shop["emulator"]).v1.payment_intents.create(
        params={"amount": 1234, "currency": "eur", "confirm": True, "payment_method": "pm_card_visa"}
    )

    assert "Clean" in _check()


def test_stripe_out_of_reach_midway_keeps_what_was_found_and_says_the_check_stopped(shop):
    _stripe(shop["emulator"]).v1.payment_intents.create(
        params={"amount": 1234, "currency": "eur", "confirm": True, "payment_method": "pm_card_visa"}
    )
    shop["emulator"].add_fault(path_prefix="/v1/refunds", method="GET", status=503, ratio=1.0)

    with pytest.raises(CommandError, match="stopped early"):
        _check()

    check = BooksCheck.objects.get()
    assert check.error
    assert [drift.kind for drift in check.drifts.all()] == [DriftKind.ORDER_MISSING]
    assert client_for(shop["staff"]).get("/api/v1/payments/stats").json()["books"]["complete"] is False


def test_the_last_day_there_is_is_a_range_too(mirror_on, db):
    assert "Clean" in _check_range("9999-12-30", "9999-12-31")


def _check_range(since: str, until: str) -> str:
    out = StringIO()
    call_command("stripe_reconcile", "--money", "--since", since, "--until", until, stdout=out)
    return out.getvalue()


def test_stripe_taking_the_amount_in_another_currency_is_drift(shop):
    order = _paid_by_app(shop)
    webhooks_quiet(shop["emulator"])
    Order.objects.filter(pk=order.pk).update(currency_charged="usd")

    with pytest.raises(CommandError, match="1 difference"):
        _check()

    assert _drifts() == [(DriftKind.AMOUNT_MISMATCH, _latest_charge(shop, order))]
    drift = BooksCheck.objects.order_by("-id").first().drifts.get()
    assert (drift.currency, drift.ours, drift.stripes) == ("eur", 2400, 2400)
    assert "2400 usd here, 2400 eur in Stripe" in drift.detail


def test_a_charge_whose_balance_transaction_says_another_amount_is_drift(db):
    """Stripe's own books disagreeing with its charge (no emulator makes that): the comparison alone."""
    order = OrderFactory(paid=True, amount_total=2400, currency="eur")
    charge = {
        "id": "ch_1",
        "amount": 2400,
        "amount_captured": 2400,
        "currency": "eur",
        "balance_transaction": {"id": "txn_1", "amount": 2000, "currency": "eur"},
    }
    findings = reconcile_money._Findings()

    reconcile_money._compare_charge(findings, order, charge, None)
    reconcile_money._compare_charge(
        findings, order, {**charge, "balance_transaction": {"amount": 2400, "currency": "eur"}}, None
    )

    assert [(d.kind, d.stripe_id, d.ours, d.stripes) for d in findings.drifts] == [
        (DriftKind.BALANCE_MISMATCH, "ch_1", 2400, 2000)
    ]


def test_a_payment_that_says_less_went_back_than_stripe_says_is_drift(shop):
    order = _paid_by_app(shop)
    refund = client_for(shop["staff"]).post(f"/api/v1/orders/{order.pk}/refunds", {"amount": 500}, format="json")
    assert refund.status_code == 201
    webhooks_quiet(shop["emulator"])
    assert _check().count("Clean") == 1
    Payment.objects.filter(payment_intent_id=order.payment_intent_id).update(
        amount_refunded=0, status=PaymentStatus.SUCCEEDED
    )

    with pytest.raises(CommandError, match="1 difference"):
        _check()

    assert _drifts() == [(DriftKind.PAYMENT_MISMATCH, _latest_charge(shop, order))]
    drift = BooksCheck.objects.order_by("-id").first().drifts.get()
    assert (drift.ours, drift.stripes) == (0, 500)
    assert "gave back 0; Stripe took 2400 eur" in drift.detail
    assert drift.detail.endswith("the order gave back 500")
