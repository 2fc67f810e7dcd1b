"""Reading payments and orders, and the numbers behind them: who sees what, the filters, the stats' arithmetic
and their cost in queries, and what the schema documents. The rows are made directly, but for a Checkout
page's payments, written by Stripe's events through the emulator."""

import re
from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.payments.orders.models import (
    Order,
    OrderLine,
    OrderRefund,
    OrderStatus,
    OrderTransition,
    Payment,
    PaymentStatus,
)
from tests.catalog.factories import PriceFactory
from tests.helpers import client_for
from tests.payments.factories import OrderFactory, OrderRefundFactory, PaymentFactory
from tests.payments.helpers import checkout_started, order_settles, wait_until, webhooks_quiet
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


@pytest.mark.integration
class TestPaymentsMadeOnACheckoutPage:
    """A Checkout Session's payment is listed like an app's, from Stripe's events (emulator, worker, webhooks)."""

    def test_a_decline_then_a_payment_on_the_page_are_one_listed_payment(self, shop):
        client, started = checkout_started(shop)
        emulator = shop["emulator"]

        emulator.complete_checkout(started["session_id"], "declined")

        failed = wait_until(
            lambda: Payment.objects.filter(order_id=started["order"], status=PaymentStatus.FAILED).first(),
            message="the declined payment",
        )
        listed = client.get("/api/v1/payments").json()["results"]
        assert [
            (p["id"], p["order"], p["status"], p["paid_through"], p["failure_code"], p["decline_code"]) for p in listed
        ] == [(failed.pk, started["order"], "failed", "checkout", "card_declined", "generic_decline")]
        assert listed[0]["failure_message"] == "Your card was declined."

        emulator.complete_checkout(started["session_id"], "paid")

        order_settles(started["order"], OrderStatus.PAID)
        webhooks_quiet(emulator)
        listed = client.get("/api/v1/payments").json()["results"]
        assert [
            (p["id"], p["status"], p["paid_through"], p["amount"], p["currency"], p["card_brand"], p["card_last4"])
            for p in listed
        ] == [(failed.pk, "succeeded", "checkout", 10200, "eur", "visa", "4242")]
        assert listed[0]["decline_code"] == "generic_decline"  # the decline before it stays on record
        staff = client_for(shop["staff"])
        assert [p["id"] for p in staff.get("/api/v1/payments", {"order": started["order"]}).json()["results"]] == [
            failed.pk
        ]


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


def _march() -> None:
    """A month of a small shop: two euro orders paid (one partly refunded), one yen order, one failed and one
    pending order, and six attempts to pay, four of them declined."""
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


class TestStats:
    def test_totals_series_and_rates_per_currency(self):
        _march()

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

    def test_daily_series_count_each_day_on_its_own(self):
        """Revenue on the day Stripe took it, refunds on the day they were made, orders on the day placed."""
        _march()

        stats = (
            client_for(operator())
            .get(STATS, {"date_from": "2026-03-01", "date_to": "2026-03-31", "granularity": "day"})
            .json()
        )

        assert stats["granularity"] == "day"
        assert [(r["period"], r["currency"], r["orders"], r["revenue"]) for r in stats["revenue"]] == [
            ("2026-03-02", "eur", 1, 5000),
            ("2026-03-03", "eur", 1, 2500),
            ("2026-03-10", "jpy", 1, 4500),
        ]
        assert [(r["period"], r["currency"], r["refunds"], r["refunded"]) for r in stats["refunds"]] == [
            ("2026-03-04", "eur", 1, 1000)
        ]
        assert [(r["period"], r["currency"], r["orders"], r["paid"]) for r in stats["orders"]] == [
            ("2026-03-02", "eur", 1, 1),
            ("2026-03-03", "eur", 3, 1),
            ("2026-03-10", "jpy", 1, 1),
        ]
        # What each day brought in, less what went back since (in the order's currency).
        assert [(r["day"], r["currency"], r["revenue"]) for r in stats["revenue_per_day"]] == [
            ("2026-03-02", "eur", 4000),
            ("2026-03-03", "eur", 2500),
            ("2026-03-10", "jpy", 4500),
        ]
        assert stats["totals"] == [
            {"currency": "eur", "gross": 7500, "refunded": 1000, "net": 6500},
            {"currency": "jpy", "gross": 4500, "refunded": 0, "net": 4500},
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

    @pytest.mark.parametrize("granularity", ["day", "week", "month"])
    def test_the_queries_do_not_grow_with_the_orders(self, granularity):
        staff = client_for(operator())
        now = timezone.now()
        # The orders are paid over the last ten hours: the range starts the day the
        # oldest was paid, so a run just after midnight counts them all too.
        since = timezone.localdate(now - timedelta(minutes=600)).isoformat()
        today = timezone.localdate(now).isoformat()
        currencies = ("eur", "usd", "jpy")

        def queries_for(count: int) -> list[str]:
            Order.objects.all().delete()
            orders = Order.objects.bulk_create(
                Order(
                    status=OrderStatus.PAID,
                    currency=currencies[n % 3],
                    amount_total=1000 + n,
                    amount_charged=1000 + n,
                    currency_charged=currencies[n % 3],
                    paid_at=now - timedelta(minutes=n % 600),
                )
                for n in range(count)
            )
            Payment.objects.bulk_create(
                Payment(
                    order=order,
                    payment_intent_id=f"pi_{order.pk}",
                    status=PaymentStatus.SUCCEEDED if n % 4 else PaymentStatus.FAILED,
                    decline_code="" if n % 4 else ("generic_decline", "insufficient_funds")[n % 8 // 4],
                    failure_code="" if n % 4 else "card_declined",
                    amount=order.amount_total,
                    currency=order.currency,
                )
                for n, order in enumerate(orders)
            )
            OrderRefund.objects.bulk_create(
                OrderRefund(order=order, stripe_refund_id=f"re_{order.pk}", amount=100) for order in orders[::5]
            )
            with CaptureQueriesContext(connection) as queries:
                answer = staff.get(STATS, {"date_from": since, "date_to": today, "granularity": granularity})
            assert answer.status_code == 200
            stats = answer.json()
            assert sum(row["gross"] for row in stats["totals"]) == sum(1000 + n for n in range(count))
            assert sum(row["refunds"] for row in stats["refunds"]) == len(orders[::5])
            assert sum(row["count"] for row in stats["failures_by_reason"]) == len(orders[::4])
            return [query["sql"] for query in queries.captured_queries]

        few, many = queries_for(10), queries_for(1_000)

        assert len(few) == len(many)
        # Each series is one grouped query of its table, whatever the number of rows: orders placed, orders
        # paid (revenue), orders in review, and by week or month the net per day; the refunds; the attempts
        # to pay and their failures by reason.
        per_table = Counter(match.group(1) for sql in many if (match := re.match(r'SELECT .*? FROM "(\w+)"', sql)))
        assert per_table["payments_order"] == (3 if granularity == "day" else 4)
        assert per_table["payments_orderrefund"] == 1
        assert per_table["payments_payment"] == 2


class TestTheSchema:
    """Swagger is what an app developer reads: every field the answers carry and every filter they take."""

    @pytest.fixture
    def schema(self, client) -> dict:
        answer = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
        assert answer.status_code == 200
        return answer.json()

    @staticmethod
    def _fields(schema: dict, reference: dict) -> set[str]:
        component = schema["components"]["schemas"][reference["$ref"].rsplit("/", 1)[1]]
        return set(component["properties"]) & set(component.get("required", ()))

    @staticmethod
    def _parameters(schema: dict, path: str) -> set[str]:
        return {parameter["name"] for parameter in schema["paths"][path]["get"]["parameters"]}

    def _answer(self, schema: dict, path: str, method: str, status: str) -> set[str]:
        answer = schema["paths"][path][method]["responses"][status]["content"]["application/json"]
        return self._fields(schema, answer["schema"])

    def test_a_payment_intent_answer_documents_what_an_app_needs(self, schema):
        assert self._answer(schema, "/api/v1/payment-intents/", "post", "201") >= {
            "order",
            "payment_intent",
            "client_secret",
            "publishable_key",
            "amount",
            "currency",
            "status",
        }

    def test_payments_document_their_fields_and_filters(self, schema):
        fields = {
            "id",
            "order",
            "user",
            "status",
            "amount",
            "amount_refunded",
            "currency",
            "card_brand",
            "card_last4",
            "failure_code",
            "decline_code",
            "failure_message",
            "payment_intent",
            "paid_through",
        }
        listed = schema["paths"]["/api/v1/payments/"]["get"]["responses"]["200"]["content"]["application/json"]
        page = schema["components"]["schemas"][listed["schema"]["$ref"].rsplit("/", 1)[1]]

        assert self._fields(schema, page["properties"]["results"]["items"]) >= fields
        assert self._answer(schema, "/api/v1/payments/{id}/", "get", "200") >= fields
        assert self._parameters(schema, "/api/v1/payments/") >= {
            "status",
            "order",
            "user",
            "decline_code",
            "date_from",
            "date_to",
        }
        statuses = schema["components"]["schemas"]["PaymentStatusEnum"]["enum"]
        assert set(statuses) >= {"processing", "succeeded", "failed", "canceled", "refunded", "partially_refunded"}

    def test_orders_document_their_filters_and_the_detail_its_history(self, schema):
        assert self._parameters(schema, "/api/v1/orders/") >= {"user", "email", "date_from", "date_to", "search"}
        assert self._answer(schema, "/api/v1/orders/{id}/", "get", "200") >= {"payments", "refunds", "transitions"}

    def test_stats_document_their_parameters_and_every_series(self, schema):
        assert self._parameters(schema, "/api/v1/payments/stats/") >= {"date_from", "date_to", "granularity"}
        granularity = next(
            p for p in schema["paths"]["/api/v1/payments/stats/"]["get"]["parameters"] if p["name"] == "granularity"
        )
        assert set(granularity["schema"]["enum"]) == {"day", "week", "month"}
        stats = schema["paths"]["/api/v1/payments/stats/"]["get"]["responses"]["200"]["content"]["application/json"]
        assert self._fields(schema, stats["schema"]) >= {
            "totals",
            "revenue",
            "refunds",
            "orders",
            "failures_by_reason",
            "payment_success_rate",
            "drift_count",
            "books",
        }
        components = schema["components"]["schemas"]
        assert set(components["CurrencyTotals"]["properties"]) == {"currency", "gross", "refunded", "net"}
        assert set(components["RevenuePeriod"]["properties"]) == {"period", "currency", "orders", "revenue"}
        assert set(components["RefundPeriod"]["properties"]) == {"period", "currency", "refunds", "refunded"}
        assert set(components["OrderPeriod"]["properties"]) == {"period", "currency", "orders", "paid"}
