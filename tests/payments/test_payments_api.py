"""Reading payments and orders, and the numbers behind them: who sees what, the filters, the stats' arithmetic
and their cost in queries. The rows are made directly; how events write them is tested with the emulator."""

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.payments.models import Order, OrderLine, OrderStatus, OrderTransition, PaymentStatus
from tests.catalog.factories import PriceFactory
from tests.helpers import client_for
from tests.payments.factories import OrderFactory, OrderRefundFactory, PaymentFactory
from tests.users.factories import UserFactory, operator

pytestmark = pytest.mark.django_db

STATS = "/api/v1/payments/stats"


def _at(day: str, hour: int = 12) -> datetime:
    return timezone.make_aware(datetime.fromisoformat(day).replace(hour=hour))


def _dated(model_object, day: str, **more):
    """Move a row's creation (and payment) to a day: `auto_now_add` cannot be given at creation."""
    type(model_object).objects.filter(pk=model_object.pk).update(created_at=_at(day), **more)
    return model_object


class TestPayments:
    def test_users_see_their_own_payments_and_nobody_elses(self, user):
        mine = PaymentFactory(order__user=user)
        theirs = PaymentFactory()
        client = client_for(user)

        listed = client.get("/api/v1/payments").json()

        assert [row["id"] for row in listed["results"]] == [mine.pk]
        assert client.get(f"/api/v1/payments/{mine.pk}").json()["card_last4"] == "4242"
        assert client.get(f"/api/v1/payments/{theirs.pk}").status_code == 404

    def test_staff_with_the_permission_see_all_and_filter(self):
        ada, grace = UserFactory(), UserFactory()
        paid = PaymentFactory(order__user=ada)
        declined = PaymentFactory(
            order__user=grace,
            status=PaymentStatus.FAILED,
            failure_code="card_declined",
            decline_code="insufficient_funds",
        )
        old = _dated(PaymentFactory(order__user=ada), "2026-01-10")
        staff = client_for(operator())

        def ids(**filters) -> list[int]:
            answer = staff.get("/api/v1/payments", filters)
            assert answer.status_code == 200, answer.content
            return sorted(row["id"] for row in answer.json()["results"])

        assert ids() == sorted([paid.pk, declined.pk, old.pk])
        assert ids(status="failed") == [declined.pk]
        assert ids(decline_code="insufficient_funds") == [declined.pk]
        assert ids(user=ada.pk) == sorted([paid.pk, old.pk])
        assert ids(order=declined.order_id) == [declined.pk]
        assert ids(date_from="2026-01-10", date_to="2026-01-10") == [old.pk]
        assert ids(date_from="2026-01-11") == sorted([paid.pk, declined.pk])

    def test_staff_without_the_permission_see_only_their_own(self):
        PaymentFactory()
        bare_staff = UserFactory(is_staff=True)

        assert client_for(bare_staff).get("/api/v1/payments").json()["results"] == []

    @pytest.mark.parametrize(
        ("filters", "field"),
        [
            ({"status": "paid"}, "status"),
            ({"date_from": "yesterday"}, "date_from"),
            ({"date_to": ""}, "date_to"),
            ({"order": "x"}, "order"),
        ],
    )
    def test_a_bad_filter_is_a_400_naming_it(self, filters, field):
        answer = client_for(operator()).get("/api/v1/payments", filters)

        assert answer.status_code == 400
        assert field in answer.json()

    def test_anonymous_is_401(self, api_client):
        assert api_client.get("/api/v1/payments").status_code == 401


class TestOrders:
    def test_staff_filter_orders_by_date_user_and_email(self):
        ada = UserFactory(email="ada@example.com")
        recent = OrderFactory(user=ada)
        old = _dated(OrderFactory(user=ada), "2026-02-01")
        guest = OrderFactory(user=None, email="Guest@Example.com")
        staff = client_for(operator())

        def ids(**filters) -> list[int]:
            answer = staff.get("/api/v1/orders", filters)
            assert answer.status_code == 200, answer.content
            return sorted(row["id"] for row in answer.json()["results"])

        assert ids(user=ada.pk) == sorted([recent.pk, old.pk])
        assert ids(email="guest@example.com") == [guest.pk]
        assert ids(date_to="2026-02-01") == [old.pk]
        assert ids(date_from="2026-02-02") == sorted([recent.pk, guest.pk])

    def test_search_finds_orders_by_product_id_and_email_within_what_one_may_see(self, user):
        teapot = PriceFactory(product__name="Blue teapot")
        mine = OrderFactory(user=user)
        OrderLine.objects.create(
            order=mine, price=teapot, product_name="Blue teapot", unit_amount=5000, quantity=1, amount=5000
        )
        theirs = OrderFactory()
        OrderLine.objects.create(
            order=theirs, price=teapot, product_name="Blue teapot", unit_amount=5000, quantity=1, amount=5000
        )
        OrderFactory(user=user)

        found = client_for(user).get("/api/v1/orders", {"search": "teapot"}).json()["results"]
        by_staff = client_for(operator()).get("/api/v1/orders", {"search": "teapot"}).json()["results"]
        by_id = client_for(user).get("/api/v1/orders", {"search": str(mine.pk)}).json()["results"]

        assert [row["id"] for row in found] == [mine.pk]
        assert sorted(row["id"] for row in by_staff) == sorted([mine.pk, theirs.pk])
        assert mine.pk in [row["id"] for row in by_id]

    def test_the_detail_shows_payments_refunds_and_transitions(self, user):
        payment = PaymentFactory(order__user=user, amount_refunded=1000, status=PaymentStatus.PARTIALLY_REFUNDED)
        order = payment.order
        OrderRefundFactory(order=order, stripe_refund_id="re_1", amount=1000)
        OrderTransition.objects.create(order=order, from_status="pending", to_status="paid", cause="test")

        detail = client_for(user).get(f"/api/v1/orders/{order.pk}").json()

        assert [(p["status"], p["amount_refunded"]) for p in detail["payments"]] == [("partially_refunded", 1000)]
        assert [(r["stripe_refund_id"], r["amount"]) for r in detail["refunds"]] == [("re_1", 1000)]
        assert [(t["from_status"], t["to_status"]) for t in detail["transitions"]] == [("pending", "paid")]


def _paid_order(day: str, amount: int, currency: str = "eur") -> Order:
    order = OrderFactory(paid=True, amount_total=amount, currency=currency)
    return _dated(order, day, paid_at=_at(day))


class TestStats:
    def test_totals_series_and_rates_per_currency(self):
        eur = _paid_order("2026-03-02", 5000)
        _paid_order("2026-03-03", 2500)
        yen = _paid_order("2026-03-10", 4500, "jpy")
        _dated(OrderRefundFactory(order=eur, amount=1000), "2026-03-04")
        Order.objects.filter(pk=eur.pk).update(status=OrderStatus.PARTIALLY_REFUNDED, amount_refunded=1000)
        _dated(OrderFactory(status=OrderStatus.FAILED), "2026-03-03")
        _dated(OrderFactory(status=OrderStatus.PENDING), "2026-03-03")
        _dated(PaymentFactory(order=eur), "2026-03-02")
        _dated(PaymentFactory(order=yen), "2026-03-10")
        for reason in ("insufficient_funds", "insufficient_funds", "generic_decline"):
            _dated(
                PaymentFactory(status=PaymentStatus.FAILED, failure_code="card_declined", decline_code=reason),
                "2026-03-05",
            )
        _dated(
            PaymentFactory(status=PaymentStatus.FAILED, failure_code="payment_intent_authentication_failure"),
            "2026-03-05",
        )

        stats = (
            client_for(operator())
            .get(STATS, {"date_from": "2026-03-01", "date_to": "2026-03-31", "granularity": "week"})
            .json()
        )

        assert stats["totals"] == [
            {"currency": "eur", "gross": 7500, "refunded": 1000, "net": 6500},
            {"currency": "jpy", "gross": 4500, "refunded": 0, "net": 4500},
        ]
        assert [(r["period"], r["currency"], r["orders"], r["revenue"]) for r in stats["revenue"]] == [
            ("2026-03-02", "eur", 2, 7500),
            ("2026-03-09", "jpy", 1, 4500),
        ]
        assert [(r["period"], r["refunds"], r["refunded"]) for r in stats["refunds"]] == [("2026-03-02", 1, 1000)]
        assert [(r["period"], r["currency"], r["orders"], r["paid"]) for r in stats["orders"]] == [
            ("2026-03-02", "eur", 4, 2),
            ("2026-03-09", "jpy", 1, 1),
        ]
        assert stats["success_rate"] == 0.75  # three paid of four finished; the pending one is not finished
        assert stats["payment_success_rate"] == round(2 / 6, 4)
        assert stats["failures_by_reason"] == [
            {"reason": "insufficient_funds", "count": 2},
            {"reason": "generic_decline", "count": 1},
            {"reason": "payment_intent_authentication_failure", "count": 1},
        ]

    def test_money_is_counted_in_the_currency_stripe_took_it_in(self):
        """An order of 50.00 USD that Stripe charged as 45.00 EUR (accepted from review) is euros, not dollars."""
        order = _paid_order("2026-03-02", 5000, "usd")
        Order.objects.filter(pk=order.pk).update(amount_charged=4500, currency_charged="eur")
        _dated(OrderRefundFactory(order=order, amount=500), "2026-03-03")

        stats = client_for(operator()).get(STATS, {"date_from": "2026-03-01", "date_to": "2026-03-31"}).json()

        assert stats["totals"] == [{"currency": "eur", "gross": 4500, "refunded": 500, "net": 4000}]
        assert [(r["currency"], r["revenue"]) for r in stats["revenue"]] == [("eur", 4500)]
        assert [(r["currency"], r["refunded"]) for r in stats["refunds"]] == [("eur", 500)]

    def test_the_last_day_there_is_can_end_a_range(self):
        staff = client_for(operator())

        assert staff.get(STATS, {"date_from": "9999-12-01", "date_to": "9999-12-31"}).status_code == 200
        assert staff.get("/api/v1/orders", {"date_to": "9999-12-31"}).status_code == 200
        assert staff.get("/api/v1/payments", {"date_from": "0001-01-01", "date_to": "9999-12-31"}).status_code == 200

    def test_monthly_series_start_on_the_first(self):
        _paid_order("2026-03-31", 100)
        _paid_order("2026-04-01", 200)

        stats = (
            client_for(operator())
            .get(STATS, {"date_from": "2026-03-01", "date_to": "2026-04-30", "granularity": "month"})
            .json()
        )

        assert [(r["period"], r["revenue"]) for r in stats["revenue"]] == [("2026-03-01", 100), ("2026-04-01", 200)]

    def test_an_empty_range_says_so_without_dividing_by_zero(self):
        stats = client_for(operator()).get(STATS, {"date_from": "2020-01-01", "date_to": "2020-01-31"}).json()

        assert (stats["totals"], stats["success_rate"], stats["payment_success_rate"]) == ([], None, None)

    @pytest.mark.parametrize(
        ("query", "field"),
        [({"granularity": "hour"}, "granularity"), ({"date_from": "2026-02-01", "date_to": "2026-01-01"}, "date_from")],
    )
    def test_bad_parameters_are_a_400(self, query, field):
        answer = client_for(operator()).get(STATS, query)

        assert answer.status_code == 400
        assert field in answer.json()

    def test_the_queries_do_not_grow_with_the_orders(self):
        staff = client_for(operator())
        now = timezone.now()
        # The orders are paid over the last ten hours: the range starts the day the
        # oldest was paid, so a run just after midnight counts them all too.
        since = timezone.localdate(now - timedelta(minutes=600)).isoformat()
        today = timezone.localdate(now).isoformat()

        def queries_for(count: int) -> int:
            Order.objects.all().delete()
            Order.objects.bulk_create(
                Order(
                    status=OrderStatus.PAID,
                    currency=("eur", "usd", "jpy")[n % 3],
                    amount_total=1000 + n,
                    amount_charged=1000 + n,
                    currency_charged=("eur", "usd", "jpy")[n % 3],
                    paid_at=now - timedelta(minutes=n % 600),
                )
                for n in range(count)
            )
            with CaptureQueriesContext(connection) as queries:
                answer = staff.get(STATS, {"date_from": since, "date_to": today})
            assert answer.status_code == 200
            assert sum(row["gross"] for row in answer.json()["totals"]) == sum(1000 + n for n in range(count))
            return len(queries)

        assert queries_for(10) == queries_for(10_000)
