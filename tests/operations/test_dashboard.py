"""The dashboard: the numbers an operator reads, who may read them, and a cost that does not grow with orders."""

import re
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.mail.models import MessageState, OutgoingMessage
from apps.payments.gateway.client import gateway
from apps.payments.gateway.errors import StripeUnavailable
from apps.payments.mirror.models import MirrorState
from apps.payments.orders.models import OrderStatus, PaymentStatus
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from tests.payments.factories import MirrorRecordFactory, OrderFactory, OrderRefundFactory, PaymentFactory
from tests.users.factories import UserFactory, grant, operator

pytestmark = pytest.mark.django_db

URL = "/admin/dashboard/"


@pytest.fixture
def operator_client(client):
    client.force_login(operator())
    return client


def _section(page: str, name: str) -> str:
    """One box of the dashboard (`<section id=...>`), so a figure is looked for where an operator reads it."""
    match = re.search(rf'<section class="module" id="{name}">(.*?)</section>', page, re.S)
    assert match, f"no #{name} on the page"
    return re.sub(r"\s+", " ", match.group(1))


def _row(page: str, heading: str) -> str:
    """The sync section's row under `heading`, its whitespace folded."""
    match = re.search(rf"<tr><th>{heading}</th>(.*?)</tr>", _section(page, "sync"))
    assert match, f"no row {heading!r} on the page"
    return match.group(1)


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


def test_the_dashboard_shows_revenue_orders_and_how_stripe_is_kept_in_step(operator_client):
    _shop_history(orders=4)
    declined = OrderFactory(status=OrderStatus.FAILED)
    PaymentFactory(
        order=declined,
        status=PaymentStatus.FAILED,
        stripe_status="requires_payment_method",
        failure_code="card_declined",
    )
    MirrorRecordFactory(state=MirrorState.FAILED, last_error="boom")
    MirrorRecordFactory(state=MirrorState.PENDING, pending_since=timezone.now() - timedelta(minutes=7))
    WebhookEvent.objects.create(stripe_id="evt_parked", type="charge.refunded", state=WebhookEventState.FAILED)
    waiting = WebhookEvent.objects.create(stripe_id="evt_waiting", type="charge.succeeded")
    WebhookEvent.objects.filter(pk=waiting.pk).update(received_at=timezone.now() - timedelta(minutes=12))
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
    assert "8 order(s) placed in the range" in page
    # Four payments went through and one was declined; its reason is named.
    success = _section(page, "success")
    assert '<p class="figure">80.0%</p>' in success
    assert "<td>card_declined</td><td>1</td>" in success
    assert '<svg class="chart"' in success
    # The one refund, in the currency it went back in, charted and in the totals.
    refunds = _section(page, "refunds")
    assert "<strong>EUR</strong> &middot; €7.00 refunded in the range" in refunds
    assert '<svg class="chart"' in refunds
    assert re.search(r"<td>EUR</td><td>€[\d,.]+</td><td>€7.00</td>", refunds)
    mirror = _row(page, "Mirror to Stripe")
    assert 'mirrorrecord/?state__exact=failed" class="warn">1 failed</a>' in mirror
    assert "1 pending" in mirror
    assert "oldest pending: 7 min" in mirror
    events = _row(page, "Stripe events")
    assert "1 waiting (oldest for 12 min)" in events
    assert 'webhookevent/?state__exact=failed" class="warn">1 parked</a>' in events
    outbox = _row(page, "Outbox")
    assert 'outgoingmessage/?state__exact=failed" class="warn">1 failed to send</a>' in outbox
    assert "0 queued" in outbox
    assert "<td>0.0% in use (0.0 / " in _row(page, "Stripe request budget")
    assert _row(page, "Circuit breaker") == "<td>closed</td>"


def test_the_dashboard_shows_the_stripe_budget_spent_and_the_circuit_held_open(operator_client, mirror_on, settings):
    settings.STRIPE_RATE_LIMIT_PER_SECOND = settings.STRIPE_RATE_LIMIT_PER_ENDPOINT = 5.0
    settings.STRIPE_CIRCUIT_FAILURES, settings.STRIPE_CIRCUIT_COOLDOWN_SECONDS = 2, 60.0
    mirror_on.add_fault(status=500, path_prefix="/v1/products", method="POST")

    # Two answers of 500 open the circuit; the third attempt is held back before it reaches Stripe.
    with pytest.raises(StripeUnavailable):
        gateway().call(lambda options: gateway().v1.products.create(params={"name": "Kettle"}, options=options))
    assert len(mirror_on.requests_seen(method="POST", path_prefix="/v1/products")) == 2
    time.sleep(1.05 - time.time() % 1)  # the budget counts whole seconds gone by
    page = operator_client.get(URL).content.decode()

    # Two requests in the last ten seconds, of a budget of five a second.
    assert "<td>4.0% in use (0.2 / 5 per s)</td>" in _row(page, "Stripe request budget")
    assert re.fullmatch(r'<td class="warn">open for (5\d|60) s more</td>', _row(page, "Circuit breaker"))


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
