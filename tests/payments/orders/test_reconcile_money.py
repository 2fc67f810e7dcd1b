"""Books that balance (apps/payments/orders/reconcile_money.py): our paid orders, payments and refunds compared
with Stripe's charges, refunds and balance transactions over a time range, and what disagrees stored as drift
on the check; nothing repaired.

Here each rule of the comparison on its own, with Stripe played by an in-memory stand-in: which side is wrong
makes which drift with which amounts (integer minor units), what is left out (failed charges and refunds,
another installation's, what Stripe did a moment ago), how the range and the pages are asked for, and what a
Stripe that stops answering midway leaves. The whole check against the emulator, drift made on purpose on
either side through real payments, is in tests/journeys/test_money_check.py (as is the balance transaction
that disagrees with its charge, which no emulator makes).
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.payments.orders import reconcile_money as books
from apps.payments.orders.models import (
    BooksCheck,
    DriftKind,
    Order,
    OrderRefund,
    OrderStatus,
    Payment,
    PaymentStatus,
)
from apps.payments.orders.reconcile_money import reconcile_money
from tests.payments.factories import OrderFactory, OrderRefundFactory, PaymentFactory
from tests.payments.stripe_stand_in import missing, refused, sdk_list, unreachable

pytestmark = pytest.mark.django_db

OURS = {"app_namespace": "testsuite"}


@pytest.fixture(autouse=True)
def nothing_on_its_way(settings):
    """What Stripe did up to this moment counts (the wait for late events has its own test)."""
    settings.BOOKS_SETTLE_SECONDS = 0


def _since() -> datetime:
    return timezone.now() - timedelta(days=1)


def _charge(charge_id: str, intent_id: str | None, amount: int = 5000, **fields) -> dict:
    """A succeeded charge as Stripe lists it, its balance transaction expanded and agreeing."""
    return {
        "id": charge_id,
        "object": "charge",
        "status": "succeeded",
        "payment_intent": intent_id,
        "amount": amount,
        "amount_captured": amount,
        "currency": "eur",
        "metadata": OURS,
        "balance_transaction": {"id": f"txn_{charge_id}", "amount": amount, "currency": "eur"},
        **fields,
    }


def _refund(refund_id: str, intent_id: str, amount: int, status: str = "succeeded") -> dict:
    return {
        "id": refund_id,
        "object": "refund",
        "status": status,
        "payment_intent": intent_id,
        "amount": amount,
        "currency": "eur",
    }


def _stripe_holds(stand_in, *, charges=(), refunds=(), earlier_charges=()) -> None:
    """Stripe's books: what it made in the range, and charges made before it (found only by their intent)."""

    def list_charges(call):
        if "payment_intent" in call.params:
            every = [*charges, *earlier_charges]
            return [charge for charge in every if charge["payment_intent"] == call.params["payment_intent"]]
        return list(charges)

    stand_in.always("charges.list", list_charges)
    stand_in.always("refunds.list", list(refunds))


def _paid(intent_id: str = "pi_1", amount: int = 5000, **fields) -> Order:
    """An order paid an hour ago with its succeeded payment."""
    order = OrderFactory(paid=True, amount_total=amount, payment_intent_id=intent_id, **fields)
    PaymentFactory(order=order)
    return order


def _drifts(check: BooksCheck) -> list[tuple]:
    return [(d.kind, d.stripe_id, d.order_id, d.currency, d.ours, d.stripes) for d in check.drifts.all()]


class TestBooksThatAgree:
    def test_a_paid_order_whose_charge_and_refund_agree_is_no_drift(self, stripe_stand_in):
        order = _paid()
        OrderRefundFactory(order=order, stripe_refund_id="re_1", amount=500)
        Order.objects.filter(pk=order.pk).update(amount_refunded=500)
        Payment.objects.filter(order=order).update(amount_refunded=500, status=PaymentStatus.PARTIALLY_REFUNDED)
        _stripe_holds(stripe_stand_in, charges=[_charge("ch_1", "pi_1")], refunds=[_refund("re_1", "pi_1", 500)])

        check = reconcile_money(since=_since())

        assert (check.orders_checked, check.charges_checked, check.refunds_checked) == (1, 1, 1)
        assert (check.drift_count, check.error, check.finished_at is not None) == (0, "", True)
        assert stripe_stand_in.paths == ["charges.list", "refunds.list"]  # nothing asked one by one

    def test_stripe_is_asked_for_the_range_in_whole_seconds_with_the_balance_transactions(self, stripe_stand_in):
        since = datetime(2026, 3, 1, 12, 0, 0, 400_000, tzinfo=UTC)
        until = datetime(2026, 3, 2, 12, 0, 0, 200_000, tzinfo=UTC)
        _stripe_holds(stripe_stand_in)

        reconcile_money(since=since, until=until)

        created = {"gte": int(since.timestamp()), "lt": int(until.timestamp()) + 1}  # the second `until` is in
        charges, refunds = stripe_stand_in.calls
        assert charges.params == {"created": created, "expand": ["data.balance_transaction"], "limit": 100}
        assert refunds.params == {"created": created, "limit": 100}

    def test_what_stripe_did_a_moment_ago_is_left_for_the_next_check(self, stripe_stand_in, settings):
        settings.BOOKS_SETTLE_SECONDS = 900
        _paid()  # paid a moment ago: its events may still be on the way
        _stripe_holds(stripe_stand_in)

        check = reconcile_money(since=_since(), until=timezone.now() + timedelta(days=1))

        assert timezone.now() - check.until >= timedelta(seconds=899)
        assert (check.orders_checked, check.drift_count) == (0, 0)

    def test_every_page_is_read_after_the_last_object_of_the_one_before(self, stripe_stand_in, monkeypatch):
        monkeypatch.setattr(books, "PAGE", 2)
        strangers = [_charge(f"ch_{n}", f"pi_stranger_{n}", metadata={}) for n in range(5)]

        def page(call):
            after = call.params.get("starting_after")
            start = 0 if after is None else [c["id"] for c in strangers].index(after) + 1
            chunk = strangers[start : start + 2]
            return sdk_list(chunk, has_more=start + 2 < len(strangers))

        stripe_stand_in.always("charges.list", page).always("refunds.list", [])

        check = reconcile_money(since=_since())

        pages = [call.params.get("starting_after") for call in stripe_stand_in.calls_to("charges.list")]
        assert pages == [None, "ch_1", "ch_3"]
        assert check.charges_checked == 5
        assert sorted(drift.stripe_id for drift in check.drifts.all()) == [c["id"] for c in strangers]

    def test_a_page_that_says_more_follows_but_holds_nothing_ends_the_read(self, stripe_stand_in):
        stripe_stand_in.always("charges.list", lambda call: sdk_list([], has_more=True)).always("refunds.list", [])

        check = reconcile_money(since=_since())

        assert len(stripe_stand_in.calls_to("charges.list")) == 1
        assert check.error == ""


class TestCharges:
    def test_a_charge_that_did_not_succeed_is_neither_counted_nor_drift(self, stripe_stand_in):
        _stripe_holds(stripe_stand_in, charges=[_charge("ch_declined", "pi_x", status="failed", metadata={})])

        check = reconcile_money(since=_since())

        assert (check.charges_checked, check.drift_count) == (0, 0)

    def test_an_order_paid_in_the_range_by_a_charge_made_before_it_is_found_by_its_intent(self, stripe_stand_in):
        _paid("pi_1")
        _stripe_holds(stripe_stand_in, earlier_charges=[_charge("ch_1", "pi_1")])

        check = reconcile_money(since=_since())

        lookup = stripe_stand_in.calls_to("charges.list")[1]
        assert lookup.params == {"payment_intent": "pi_1", "expand": ["data.balance_transaction"]}
        assert check.drift_count == 0

    def test_an_order_paid_here_with_no_successful_charge_in_stripe_is_drift(self, stripe_stand_in):
        order = _paid("pi_1", amount=5000)
        _stripe_holds(stripe_stand_in, earlier_charges=[_charge("ch_declined", "pi_1", status="failed")])

        check = reconcile_money(since=_since())

        assert _drifts(check) == [(DriftKind.CHARGE_MISSING, "pi_1", order.pk, "eur", 5000, None)]
        assert (
            check.drifts.get().detail == f"order {order.pk} is paid here, but Stripe holds no successful charge of pi_1"
        )

    def test_what_stripe_captured_counts_not_what_it_authorised(self, stripe_stand_in):
        order = _paid("pi_1", amount=5000)
        captured = {"amount_captured": 4000, "balance_transaction": {"id": "t", "amount": 4000, "currency": "eur"}}
        _stripe_holds(stripe_stand_in, charges=[_charge("ch_1", "pi_1", amount=5000, **captured)])

        check = reconcile_money(since=_since())

        assert sorted(_drifts(check)) == [
            (DriftKind.AMOUNT_MISMATCH, "ch_1", order.pk, "eur", 5000, 4000),
            (DriftKind.PAYMENT_MISMATCH, "ch_1", order.pk, "eur", 5000, 4000),
        ]

    def test_the_same_amount_in_another_currency_is_drift(self, stripe_stand_in):
        order = _paid("pi_1", amount=5000)
        _stripe_holds(
            stripe_stand_in,
            charges=[
                _charge(
                    "ch_1", "pi_1", currency="usd", balance_transaction={"id": "t", "amount": 5000, "currency": "usd"}
                )
            ],
        )

        check = reconcile_money(since=_since())

        assert (DriftKind.AMOUNT_MISMATCH, "ch_1", order.pk, "usd", 5000, 5000) in _drifts(check)
        assert "5000 eur here, 5000 usd in Stripe" in check.drifts.get(kind=DriftKind.AMOUNT_MISMATCH).detail

    def test_a_payment_still_pending_here_while_stripe_took_the_money_is_drift(self, stripe_stand_in):
        order = OrderFactory(paid=True, payment_intent_id="pi_1")
        payment = PaymentFactory(order=order, status=PaymentStatus.PENDING)
        _stripe_holds(stripe_stand_in, charges=[_charge("ch_1", "pi_1")])

        check = reconcile_money(since=_since())

        drift = check.drifts.get()
        assert (drift.kind, drift.stripe_id, drift.order_id) == (DriftKind.PAYMENT_MISMATCH, "ch_1", order.pk)
        assert drift.detail.startswith(f"payment {payment.pk} of order {order.pk} is pending, took 5000 eur")

    def test_an_order_without_a_payment_row_is_compared_on_its_own(self, stripe_stand_in):
        OrderFactory(paid=True, payment_intent_id="pi_1")
        _stripe_holds(stripe_stand_in, charges=[_charge("ch_1", "pi_1")])

        assert reconcile_money(since=_since()).drift_count == 0

    def test_a_charge_no_order_here_accounts_for_is_drift(self, stripe_stand_in):
        _stripe_holds(stripe_stand_in, charges=[_charge("ch_1", "pi_unknown", amount=1234, metadata={})])

        check = reconcile_money(since=_since())

        assert _drifts(check) == [(DriftKind.ORDER_MISSING, "ch_1", None, "eur", None, 1234)]

    @pytest.mark.parametrize("status", [OrderStatus.PENDING, OrderStatus.PAID])
    def test_a_charge_without_an_intent_is_no_order_whose_intent_is_not_known(self, stripe_stand_in, status):
        OrderFactory(status=status, payment_intent_id="")  # its checkout has not named an intent yet
        _stripe_holds(stripe_stand_in, charges=[_charge("ch_1", None, amount=1234)])

        check = reconcile_money(since=_since())

        assert (DriftKind.ORDER_MISSING, "ch_1", None, "eur", None, 1234) in _drifts(check)

    def test_a_charge_of_another_installation_sharing_the_account_is_not_drift(self, stripe_stand_in):
        theirs = _charge("ch_1", "pi_theirs", metadata={"app_namespace": "a-colleagues-laptop"})
        _stripe_holds(stripe_stand_in, charges=[theirs])

        assert reconcile_money(since=_since()).drift_count == 0

    def test_a_charge_for_an_order_paid_outside_the_range_is_not_drift(self, stripe_stand_in):
        _paid("pi_1", paid_at=timezone.now() - timedelta(days=3))
        _stripe_holds(stripe_stand_in, charges=[_charge("ch_1", "pi_1")])

        check = reconcile_money(since=_since())

        assert (check.orders_checked, check.drift_count) == (0, 0)

    def test_money_taken_for_an_order_not_paid_here_is_drift(self, stripe_stand_in):
        order = OrderFactory(payment_intent_id="pi_1")  # pending: the event that would pay it was lost
        _stripe_holds(stripe_stand_in, charges=[_charge("ch_1", "pi_1", amount=5000)])

        check = reconcile_money(since=_since())

        assert _drifts(check) == [(DriftKind.CHARGED_UNPAID, "ch_1", order.pk, "eur", None, 5000)]
        assert check.drifts.get().detail.endswith(f"for order {order.pk}, which is pending here")

    def test_an_order_is_found_through_its_payment_when_it_does_not_name_the_intent(self, stripe_stand_in):
        order = OrderFactory(status=OrderStatus.EXPIRED, checkout_session_id="cs_1")
        PaymentFactory(order=order, payment_intent_id="pi_of_the_session", status=PaymentStatus.PROCESSING)
        _stripe_holds(stripe_stand_in, charges=[_charge("ch_1", "pi_of_the_session")])

        check = reconcile_money(since=_since())

        assert _drifts(check) == [(DriftKind.CHARGED_UNPAID, "ch_1", order.pk, "eur", None, 5000)]


class TestRefunds:
    def test_a_refund_made_in_stripe_and_not_recorded_here_is_drift(self, stripe_stand_in):
        order = _paid("pi_1")
        _stripe_holds(stripe_stand_in, charges=[_charge("ch_1", "pi_1")], refunds=[_refund("re_lost", "pi_1", 700)])

        check = reconcile_money(since=_since())

        assert _drifts(check) == [(DriftKind.REFUND_NOT_RECORDED, "re_lost", order.pk, "eur", None, 700)]
        assert check.refunds_checked == 1

    def test_a_refund_of_another_amount_in_stripe_is_drift(self, stripe_stand_in):
        order = _paid("pi_1")
        OrderRefundFactory(order=order, stripe_refund_id="re_1", amount=500)
        _stripe_holds(stripe_stand_in, refunds=[_refund("re_1", "pi_1", 600)], earlier_charges=[_charge("c", "pi_1")])

        check = reconcile_money(since=_since())

        assert (DriftKind.REFUND_AMOUNT_MISMATCH, "re_1", order.pk, "eur", 500, 600) in _drifts(check)

    @pytest.mark.parametrize("status", ["failed", "canceled", "requires_action"])
    def test_a_refund_that_did_not_go_through_is_not_compared(self, stripe_stand_in, status):
        _paid("pi_1")
        _stripe_holds(
            stripe_stand_in, charges=[_charge("ch_1", "pi_1")], refunds=[_refund("re_1", "pi_1", 700, status)]
        )

        check = reconcile_money(since=_since())

        assert (check.refunds_checked, check.drift_count) == (0, 0)

    def test_a_pending_refund_counts_as_made(self, stripe_stand_in):
        order = _paid("pi_1")
        _stripe_holds(
            stripe_stand_in, charges=[_charge("ch_1", "pi_1")], refunds=[_refund("re_1", "pi_1", 700, "pending")]
        )

        check = reconcile_money(since=_since())

        assert _drifts(check) == [(DriftKind.REFUND_NOT_RECORDED, "re_1", order.pk, "eur", None, 700)]

    def test_a_refund_of_a_payment_that_is_not_an_order_of_ours_is_not_counted(self, stripe_stand_in):
        _stripe_holds(stripe_stand_in, refunds=[_refund("re_1", "pi_stranger", 700)])

        check = reconcile_money(since=_since())

        assert (check.refunds_checked, check.drift_count) == (0, 0)

    def test_a_refund_recorded_here_that_stripe_does_not_hold_is_drift(self, stripe_stand_in):
        refund = OrderRefundFactory(stripe_refund_id="re_ghost", amount=300)
        _stripe_holds(stripe_stand_in, earlier_charges=[_charge("ch", refund.order.payment_intent_id)])
        stripe_stand_in.always("refunds.retrieve", missing("refund"))

        check = reconcile_money(since=_since())

        assert stripe_stand_in.calls_to("refunds.retrieve")[0].args == ("re_ghost",)
        assert (DriftKind.REFUND_MISSING, "re_ghost", refund.order_id, "eur", 300, None) in _drifts(check)

    def test_a_refund_recorded_here_that_failed_in_stripe_is_drift(self, stripe_stand_in):
        refund = OrderRefundFactory(stripe_refund_id="re_1", amount=300)
        _stripe_holds(stripe_stand_in, earlier_charges=[_charge("ch", refund.order.payment_intent_id)])
        stripe_stand_in.always("refunds.retrieve", _refund("re_1", refund.order.payment_intent_id, 300, "failed"))

        check = reconcile_money(since=_since())

        assert [drift.kind for drift in check.drifts.all()] == [DriftKind.REFUND_MISSING]

    def test_a_refund_recorded_in_the_range_that_stripe_made_just_before_it_is_compared_by_its_id(
        self, stripe_stand_in
    ):
        refund = OrderRefundFactory(stripe_refund_id="re_1", amount=300)
        intent = refund.order.payment_intent_id
        _stripe_holds(stripe_stand_in, earlier_charges=[_charge("ch", intent)])
        stripe_stand_in.always("refunds.retrieve", _refund("re_1", intent, 400))

        check = reconcile_money(since=_since())

        assert check.refunds_checked == 1
        assert [drift.kind for drift in check.drifts.all()] == [DriftKind.REFUND_AMOUNT_MISMATCH]

    def test_a_refund_recorded_before_the_range_is_not_asked_about(self, stripe_stand_in):
        refund = OrderRefundFactory(stripe_refund_id="re_old", amount=300)
        OrderRefund.objects.filter(pk=refund.pk).update(created_at=timezone.now() - timedelta(days=3))
        _stripe_holds(stripe_stand_in)

        reconcile_money(since=_since())

        assert "refunds.retrieve" not in stripe_stand_in.paths


class TestWhenStripeStopsAnswering:
    def test_what_was_found_before_stripe_went_out_of_reach_is_kept_and_the_check_says_it_stopped(
        self, stripe_stand_in
    ):
        stripe_stand_in.always("charges.list", [_charge("ch_1", "pi_unknown", metadata={})])
        stripe_stand_in.always("refunds.list", unreachable())

        check = reconcile_money(since=_since())

        check.refresh_from_db()
        assert check.error.startswith("StripeUnavailable: ")
        assert (check.drift_count, check.charges_checked, check.finished_at is not None) == (1, 1, True)
        assert [drift.kind for drift in check.drifts.all()] == [DriftKind.ORDER_MISSING]

    def test_stripe_refusing_the_read_stops_the_check_with_its_reason(self, stripe_stand_in):
        stripe_stand_in.always("charges.list", refused("The provided key does not have access to charges"))

        check = reconcile_money(since=_since())

        assert check.error.startswith("InvalidRequestError: ")
        assert "does not have access" in check.error
        assert check.drift_count == 0
        assert "refunds.list" not in stripe_stand_in.paths

    def test_a_recorded_refund_stripe_cannot_be_asked_about_is_not_called_missing(self, stripe_stand_in):
        refund = OrderRefundFactory(stripe_refund_id="re_1", amount=300)
        _stripe_holds(stripe_stand_in, earlier_charges=[_charge("ch", refund.order.payment_intent_id)])
        stripe_stand_in.always("refunds.retrieve", unreachable())

        check = reconcile_money(since=_since())

        assert check.error.startswith("StripeUnavailable: ")
        assert DriftKind.REFUND_MISSING not in [drift.kind for drift in check.drifts.all()]
