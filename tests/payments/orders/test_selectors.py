"""Reads of orders and payments (apps/payments/orders/selectors.py): who sees which orders and payments, which
prices a cart may be priced from, and what the stats say of orders by status, in review, and of the last
comparison of our books with Stripe's.

The stats' series, totals and rates per currency, and their cost in queries, are tested over HTTP in
tests/payments/orders/test_api.py; here what it leaves out, called directly. Stats over orders a real checkout
paid are in tests/journeys/test_checkout.py (`test_stats_for_staff`).
"""

from datetime import date, datetime, timedelta

import pytest
from django.utils import timezone

from apps.payments.orders.models import BooksCheck, Order, OrderStatus
from apps.payments.orders.selectors import (
    latest_money_check,
    net_revenue_per_day,
    order_list,
    payment_list,
    payment_stats,
    prices_on_sale,
)
from tests.catalog.factories import PriceFactory
from tests.payments.factories import OrderFactory, PaymentFactory
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

MARCH = {"date_from": date(2026, 3, 1), "date_to": date(2026, 3, 31)}


def _at(day: str, hour: int = 12) -> datetime:
    return timezone.make_aware(datetime.fromisoformat(day).replace(hour=hour))


def _paid_on(day: str, amount: int, *, refunded: int = 0, currency: str = "eur") -> Order:
    order = OrderFactory(paid=True, amount_total=amount, currency=currency)
    status = OrderStatus.PARTIALLY_REFUNDED if refunded else OrderStatus.PAID
    Order.objects.filter(pk=order.pk).update(
        created_at=_at(day), paid_at=_at(day), amount_refunded=refunded, status=status
    )
    return order


class TestWhoSeesWhat:
    def test_a_user_lists_their_own_orders_and_payments_only(self):
        ada = UserFactory()
        mine = PaymentFactory(order__user=ada)
        PaymentFactory()

        assert list(order_list(user=ada)) == [mine.order]
        assert list(payment_list(user=ada)) == [mine]

    def test_everyone_is_every_order_and_payment(self):
        payments = [PaymentFactory(), PaymentFactory()]

        assert {order.pk for order in order_list(user=None, everyone=True)} == {p.order_id for p in payments}
        assert {payment.pk for payment in payment_list(user=None, everyone=True)} == {p.pk for p in payments}

    def test_no_user_sees_nothing(self):
        PaymentFactory()

        assert list(order_list(user=None)) == []
        assert list(payment_list(user=None)) == []


class TestPricesOnSale:
    def test_only_active_prices_of_active_products_can_price_a_cart(self):
        on_sale = PriceFactory(unit_amount=1200)
        archived = PriceFactory(active=False)
        of_archived_product = PriceFactory(product__active=False)

        found = prices_on_sale(price_ids=[on_sale.pk, archived.pk, of_archived_product.pk, 999_999])

        assert found == {on_sale.pk: 1200}


class TestStatsBeyondTheSeries:
    def test_orders_by_status_carry_their_count_totals_and_refunds_per_currency(self):
        _paid_on("2026-03-02", 5000, refunded=1000)
        _paid_on("2026-03-03", 3000, refunded=500)
        _paid_on("2026-03-04", 900, currency="usd")

        stats = payment_stats(**MARCH)

        assert stats["by_status"] == [
            {"status": "paid", "currency": "usd", "count": 1, "amount_total": 900, "amount_refunded": 0},
            {
                "status": "partially_refunded",
                "currency": "eur",
                "count": 2,
                "amount_total": 8000,
                "amount_refunded": 1500,
            },
        ]

    def test_an_order_in_review_is_finished_but_not_paid_and_is_counted_whenever_it_was_placed(self):
        _paid_on("2026-03-02", 5000)
        review = OrderFactory(status=OrderStatus.REVIEW, amount_charged=4000, currency_charged="eur")
        Order.objects.filter(pk=review.pk).update(created_at=_at("2026-03-02"), paid_at=_at("2026-03-02"))
        later = OrderFactory(status=OrderStatus.REVIEW)
        Order.objects.filter(pk=later.pk).update(created_at=_at("2026-04-15"))  # outside the range, still in review

        stats = payment_stats(**MARCH)

        assert stats["success_rate"] == 0.5
        assert stats["in_review"] == 2
        assert stats["totals"] == [{"currency": "eur", "gross": 5000, "refunded": 0, "net": 5000}]

    def test_by_week_the_revenue_per_day_is_still_per_day_less_what_went_back(self):
        _paid_on("2026-03-02", 5000, refunded=1000)
        _paid_on("2026-03-03", 2500)
        _paid_on("2026-03-03", 100, currency="jpy")

        stats = payment_stats(**MARCH, granularity="week")

        assert [(row["day"], row["currency"], row["orders"], row["revenue"]) for row in stats["revenue_per_day"]] == [
            (date(2026, 3, 2), "eur", 1, 4000),
            (date(2026, 3, 3), "eur", 1, 2500),
            (date(2026, 3, 3), "jpy", 1, 100),
        ]
        assert stats["revenue_per_day"] == net_revenue_per_day(**MARCH)

    def test_orders_not_paid_bring_in_nothing(self):
        for status in (OrderStatus.PENDING, OrderStatus.FAILED, OrderStatus.CANCELED, OrderStatus.EXPIRED):
            order = OrderFactory(status=status)
            Order.objects.filter(pk=order.pk).update(created_at=_at("2026-03-02"))

        assert net_revenue_per_day(**MARCH) == []
        assert payment_stats(**MARCH)["totals"] == []


class TestLatestMoneyCheck:
    def _check(self, finished_ago: timedelta | None, **fields) -> BooksCheck:
        now = timezone.now()
        return BooksCheck.objects.create(
            since=now - timedelta(days=3),
            until=now,
            finished_at=now - finished_ago if finished_ago is not None else None,
            **fields,
        )

    def test_no_finished_check_is_none_in_the_stats(self):
        self._check(finished_ago=None, drift_count=4)  # still running

        assert latest_money_check() is None
        assert payment_stats(**MARCH)["drift_count"] is None

    def test_the_newest_finished_check_is_the_one_shown(self):
        self._check(finished_ago=timedelta(days=1), drift_count=4)
        newest = self._check(finished_ago=timedelta(hours=1), drift_count=2)
        self._check(finished_ago=None, drift_count=9)

        books = latest_money_check()

        assert (books["checked_at"], books["drift_count"], books["complete"]) == (newest.finished_at, 2, True)
        assert payment_stats(**MARCH)["drift_count"] == 2

    def test_a_check_that_stopped_midway_says_it_is_not_complete(self):
        self._check(finished_ago=timedelta(minutes=5), drift_count=1, error="Stripe out of reach after page 3")

        assert latest_money_check()["complete"] is False
