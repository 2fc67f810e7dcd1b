"""The dashboard: the numbers an operator reads, who may read them, and a cost that does not grow with orders."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.mail.models import MessageState, OutgoingMessage
from apps.payments.models import MirrorState, OrderStatus, WebhookEvent, WebhookEventState
from tests.payments.factories import MirrorRecordFactory, OrderFactory, OrderRefundFactory, PaymentFactory
from tests.users.factories import UserFactory, grant, operator

pytestmark = pytest.mark.django_db

URL = "/admin/dashboard/"


@pytest.fixture
def operator_client(client):
    client.force_login(operator())
    return client


def _shop_history(orders: int) -> None:
    for index in range(orders):
        order = OrderFactory(paid=True, amount_total=1000 + index, currency="eur" if index % 3 else "usd")
        PaymentFactory(order=order, amount=order.amount_total, currency=order.currency)
    OrderFactory(status=OrderStatus.FAILED)
    OrderFactory()
    OrderRefundFactory(amount=700)


def test_staff_without_the_view_permission_are_refused(client):
    client.force_login(grant(UserFactory(is_staff=True), "catalog.view_product"))

    assert client.get(URL).status_code == 403
    assert "Dashboard:" not in client.get("/admin/").content.decode()


def test_a_customer_is_sent_to_the_login_page(client):
    client.force_login(UserFactory())

    answer = client.get(URL)

    assert answer.status_code == 302
    assert answer["Location"].startswith("/admin/login/")


def test_the_dashboard_shows_revenue_orders_and_the_machinery(operator_client):
    _shop_history(orders=4)
    MirrorRecordFactory(state=MirrorState.FAILED, last_error="boom")
    MirrorRecordFactory(state=MirrorState.PENDING, pending_since=timezone.now() - timedelta(minutes=7))
    WebhookEvent.objects.create(stripe_id="evt_parked", type="charge.refunded", state=WebhookEventState.FAILED)
    OutgoingMessage.objects.create(
        idempotency_key="receipt:order:1",
        kind="receipt",
        recipient="a@example.com",
        subject="Receipt",
        body_text="",
        body_html="",
        message_id="<1@example.com>",
        state=MessageState.FAILED,
    )

    page = operator_client.get(URL).content.decode()

    assert "Dashboard: revenue" in operator_client.get("/admin/").content.decode()
    # Revenue per currency, each its own chart (amounts of two currencies never share an axis).
    assert "<strong>EUR</strong>" in page
    assert "<strong>USD</strong>" in page
    assert '<svg class="chart"' in page
    assert "<td>EUR</td><td>€" in page  # totals written as money, not minor units
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere
    assert "7 order(s) placed in the range" in page
    assert 'class="warn">1 failed</a>' in page
    assert "oldest pending: 7 min" in page
    assert 'class="warn">1 parked</a>' in page
    assert "Circuit breaker</th><td>closed" in page


def test_the_range_is_chosen_from_a_few_and_anything_else_falls_back(operator_client):
    assert "last 7 days" not in operator_client.get(URL + "?days=7").content.decode()  # the links, not prose
    assert 'href="?days=7" class="current"' in operator_client.get(URL + "?days=7").content.decode()
    assert 'href="?days=30" class="current"' in operator_client.get(URL + "?days=abc").content.decode()
    assert 'href="?days=30" class="current"' in operator_client.get(URL + "?days=100000").content.decode()


def test_the_queries_do_not_grow_with_the_orders(operator_client):
    def queries() -> int:
        seen = []

        def count(execute, sql, params, many, context):
            seen.append(sql)
            return execute(sql, params, many, context)

        # Counted as they run: the request resets Django's own query log when it starts.
        with connection.execute_wrapper(count):
            assert operator_client.get(URL).status_code == 200
        return len(seen)

    _shop_history(orders=2)
    few = queries()
    _shop_history(orders=30)

    assert few > 5  # the count is real: sessions, permissions and every aggregate
    assert queries() == few
