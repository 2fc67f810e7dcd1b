"""Reads of billing (apps/payments/billing/selectors.py): whether a user may use what a product sells
(`user_has_active_plan`), their plans for `/users/me`, what a message about a subscription says, and the plan
stats an operator reads (counts by status, monthly recurring revenue, starts and churn).

Here on subscriptions stored as Stripe-shaped JSON through dj-stripe, without Stripe. The same reads over HTTP,
on subscriptions a Stripe test clock moves through renewals, dunning and cancellation, are covered in
tests/journeys/test_subscriptions.py (`test_stats_count_plans_by_status_with_their_monthly_revenue_and_churn`,
`test_a_view_guarded_by_plan_required_follows_the_subscription`).
"""

from datetime import UTC, date, datetime

import pytest
from djstripe import models as djstripe_models

from apps.payments.billing.selectors import (
    active_plans,
    live_subscription_of,
    subscription_list,
    subscription_news,
    subscription_stats,
    subscriptions_of_email,
    subscriptions_of_product,
    user_has_active_plan,
)
from tests.catalog.factories import ProductFactory
from tests.payments.billing.factories import CREATED, invoiced, plan, subscribed
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _offline(stripe_stand_in):
    """Every request dj-stripe might make fails the test."""


def _timestamp(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())


class TestUserHasActivePlan:
    @pytest.mark.parametrize(
        ("status", "allowed"),
        [
            ("trialing", True),
            ("active", True),
            ("past_due", True),  # Stripe still retries the card
            ("unpaid", False),
            ("canceled", False),
            ("incomplete", False),
            ("incomplete_expired", False),
            ("paused", False),
        ],
    )
    def test_a_plan_gives_access_while_it_is_trialing_active_or_past_due(self, status, allowed):
        ada, pro = UserFactory(), plan("Pro")
        subscribed(ada, pro, status=status)

        assert user_has_active_plan(ada, pro.product) is allowed

    def test_a_plan_of_another_product_gives_no_access(self):
        ada, pro, team = UserFactory(), plan("Pro"), plan("Team")
        subscribed(ada, team)

        assert user_has_active_plan(ada, pro.product) is False

    def test_another_users_plan_gives_no_access(self):
        ada, grace, pro = UserFactory(), UserFactory(), plan("Pro")
        subscribed(grace, pro)

        assert user_has_active_plan(ada, pro.product) is False

    def test_any_plan_of_the_product_gives_access(self):
        ada, monthly = UserFactory(), plan("Pro")
        yearly = plan(product=monthly.product, unit_amount=15000, interval="year")
        subscribed(ada, yearly)

        assert user_has_active_plan(ada, monthly.product) is True

    def test_a_product_never_mirrored_and_a_user_not_saved_have_no_plan(self):
        ada, pro = UserFactory(), plan("Pro")
        subscribed(ada, pro)

        assert user_has_active_plan(ada, ProductFactory()) is False
        assert user_has_active_plan(UserFactory.build(), pro.product) is False

    def test_the_newest_of_two_live_subscriptions_is_the_one_found(self):
        ada, pro = UserFactory(), plan("Pro")
        subscribed(ada, pro, subscription_id="sub_old", created=CREATED)
        subscribed(ada, pro, subscription_id="sub_new", created=CREATED + 60)

        assert live_subscription_of(ada, pro.product).id == "sub_new"


class TestActivePlans:
    def test_me_lists_the_plans_in_use_with_their_catalog_ids(self):
        ada, pro, team = UserFactory(), plan("Pro"), plan("Team")
        subscribed(ada, pro, subscription_id="sub_pro", cancel_at_period_end=True)
        subscribed(ada, team, subscription_id="sub_team", status="canceled")

        assert active_plans(ada) == [
            {
                "product": pro.product_id,
                "product_name": "Pro",
                "price": pro.pk,
                "subscription": "sub_pro",
                "status": "active",
                "current_period_end": CREATED + 30 * 24 * 3600,
                "cancel_at_period_end": True,
            }
        ]


class TestSubscriptionNews:
    def test_news_names_the_plans_amount_and_invoice_for_mail(self):
        ada, pro = UserFactory(), plan("Pro", unit_amount=1500)
        subscribed(ada, pro, quantity=2)
        invoiced(ada, "in_1", amount=2700, number="INV-7", hosted_invoice_url="https://i/7")

        plain = subscription_news(subscription_id="sub_1")
        with_invoice = subscription_news(subscription_id="sub_1", invoice_id="in_1")

        assert (plain.user, plain.plan_names, plain.amount, plain.currency) == (ada, ["Pro"], 3000, "eur")
        assert (with_invoice.amount, with_invoice.invoice_number, with_invoice.invoice_url) == (
            2700,
            "INV-7",
            "https://i/7",
        )

    def test_no_news_of_a_subscription_of_no_user_of_ours(self):
        pro = plan("Pro")
        subscribed(UserFactory(), pro)
        djstripe_models.Customer.objects.update(subscriber=None)

        assert subscription_news(subscription_id="sub_1") is None
        assert subscription_news(subscription_id="sub_unknown") is None


class TestLists:
    def test_a_user_lists_their_own_subscriptions_staff_everyones(self):
        ada, grace, pro = UserFactory(), UserFactory(), plan("Pro")
        subscribed(ada, pro, subscription_id="sub_ada")
        subscribed(grace, pro, subscription_id="sub_grace")

        assert [sub.id for sub in subscription_list(user=ada)] == ["sub_ada"]
        assert sorted(sub.id for sub in subscription_list(user=None, everyone=True)) == ["sub_ada", "sub_grace"]
        assert list(subscription_list(user=None)) == []

    def test_staff_filter_by_the_customers_email_in_any_case_and_by_product(self):
        ada, grace = UserFactory(email="ada@example.com"), UserFactory()
        pro, team = plan("Pro"), plan("Team")
        subscribed(ada, pro, subscription_id="sub_ada")
        subscribed(grace, team, subscription_id="sub_grace")
        everyone = subscription_list(user=None, everyone=True)

        assert [sub.id for sub in subscriptions_of_email(everyone, email="ADA@example.com")] == ["sub_ada"]
        assert [sub.id for sub in subscriptions_of_product(everyone, product_id=team.product_id)] == ["sub_grace"]
        assert list(subscriptions_of_product(everyone, product_id=ProductFactory().pk)) == []


class TestStats:
    def test_monthly_revenue_spreads_each_period_over_months_per_currency(self):
        monthly = plan("Monthly", unit_amount=1500)
        quarterly = plan("Quarterly", unit_amount=3000, interval_count=3)
        yearly = plan("Yearly", unit_amount=12000, interval="year")
        dollars = plan("Dollars", unit_amount=999, currency="usd")
        subscribed(UserFactory(), monthly, subscription_id="sub_1", quantity=2)  # 3000 a month
        subscribed(UserFactory(), quarterly, subscription_id="sub_2")  # 1000 a month
        subscribed(UserFactory(), yearly, subscription_id="sub_3", status="past_due")  # 1000 a month, still paying
        subscribed(UserFactory(), dollars, subscription_id="sub_4")

        stats = subscription_stats(date_from=date(2026, 1, 1), date_to=date(2026, 1, 31))

        assert stats["mrr"] == [{"currency": "eur", "amount": 5000}, {"currency": "usd", "amount": 999}]

    def test_trials_and_ended_plans_bring_no_monthly_revenue_but_are_counted(self):
        pro = plan("Pro", unit_amount=1500)
        subscribed(UserFactory(), pro, subscription_id="sub_1", status="trialing")
        subscribed(UserFactory(), pro, subscription_id="sub_2", status="canceled")
        subscribed(UserFactory(), pro, subscription_id="sub_3", status="unpaid")
        subscribed(UserFactory(), pro, subscription_id="sub_4")

        stats = subscription_stats(date_from=date(2026, 1, 1), date_to=date(2026, 1, 31))

        assert stats["mrr"] == [{"currency": "eur", "amount": 1500}]
        assert stats["by_status"] == [
            {"status": "active", "count": 1},
            {"status": "canceled", "count": 1},
            {"status": "trialing", "count": 1},
            {"status": "unpaid", "count": 1},
        ]
        assert (stats["active"], stats["trialing"], stats["past_due"]) == (1, 1, 0)

    def test_starts_and_churn_are_counted_in_the_days_asked_only(self):
        pro = plan("Pro")
        subscribed(UserFactory(), pro, subscription_id="sub_jan", start_date=_timestamp("2026-01-31T23:59:00"))
        subscribed(UserFactory(), pro, subscription_id="sub_feb", start_date=_timestamp("2026-02-01T00:00:00"))
        subscribed(
            UserFactory(),
            pro,
            subscription_id="sub_gone",
            status="canceled",
            start_date=_timestamp("2025-12-01T00:00:00"),
            ended_at=_timestamp("2026-01-15T00:00:00"),
        )

        january = subscription_stats(date_from=date(2026, 1, 1), date_to=date(2026, 1, 31))

        assert (january["started"], january["churned"]) == (1, 1)
