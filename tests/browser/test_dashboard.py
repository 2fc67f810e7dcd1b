"""The dashboard as a browser draws it: charts with real sizes, figures, and links that lead somewhere."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.payments.mirror.models import MirrorState
from apps.payments.orders.models import Order, OrderStatus
from tests.browser.admin_pages import AdminPages
from tests.browser.helpers import keep_for_readme
from tests.payments.factories import MirrorRecordFactory, OrderFactory, OrderRefundFactory, PaymentFactory
from tests.users.factories import operator

PASSWORD = "dashboard-operator-passphrase"


def _a_month_of_business() -> None:
    now = timezone.now()
    for day in range(30):
        for n in range(1 + (day * 7) % 5):
            order = OrderFactory(paid=True, amount_total=2500 + 700 * n + 90 * day, currency="eur" if n % 4 else "usd")
            PaymentFactory(order=order, amount=order.amount_total, currency=order.currency)
            placed = now - timedelta(days=day, hours=n)
            Order.objects.filter(pk=order.pk).update(created_at=placed, paid_at=placed)
        if day % 6 == 0:
            OrderFactory(status=OrderStatus.EXPIRED)
            OrderRefundFactory(amount=900 + 100 * day)
    OrderFactory(status=OrderStatus.FAILED)
    MirrorRecordFactory(state=MirrorState.FAILED, last_error="No such price")


@pytest.mark.django_db(transaction=True)
def test_the_dashboard_draws_its_charts(browser, live_server):
    _a_month_of_business()
    staff = operator()
    staff.set_password(PASSWORD)
    staff.save()
    admin = AdminPages(browser, live_server.url)
    admin.log_in(staff.email, PASSWORD)

    admin.open("/admin/")
    admin.click("#dashboard-link a")

    revenue_bars = admin.find_all("#revenue svg.chart rect")
    assert len(revenue_bars) == 60  # a bar per day, for each of two currencies
    assert all(bar.size["width"] > 0 for bar in revenue_bars)
    assert max(bar.size["height"] for bar in revenue_bars) > 50
    assert "EUR" in admin.text("#revenue")
    assert "USD" in admin.text("#revenue")
    assert admin.find_all("#orders svg.chart rect")
    assert "1 failed" in admin.text("#sync")
    keep_for_readme(browser, "dashboard", height=1500)

    admin.click("#sync a.warn")  # the failed mirror row, one click away
    assert "No such price" in admin.text("#result_list")
