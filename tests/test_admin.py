import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.catalog.models import Price, Product
from apps.catalog.signals import price_changed, product_changed, product_deleted
from apps.payments.orders.models import Order, Payment
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from apps.users.models import User
from apps.users.signals import user_registered
from tests.catalog.factories import PriceFactory, ProductFactory
from tests.payments.factories import OrderFactory, PaymentFactory
from tests.signal_recorder import SignalRecorder
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

INLINE = "prices"


@pytest.fixture
def operator_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def _inline_management(prefix: str, total: int, initial: int) -> dict:
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


@pytest.mark.parametrize(
    "url",
    [
        "/admin/users/user/",
        "/admin/catalog/product/",
        "/admin/catalog/price/",
        "/admin/users/user/?q=example",
        "/admin/catalog/product/?active__exact=0",
        "/admin/catalog/price/?currency=usd",
    ],
)
def test_changelists_open(operator_client, url):
    ProductFactory.create_batch(2)
    PriceFactory()

    assert operator_client.get(url).status_code == 200


def test_adding_a_product_with_an_inline_price_goes_through_the_services(operator_client):
    form = {
        "name": "Kettle",
        "description": "",
        "active": "on",
        "metadata": "{}",
        **_inline_management(INLINE, total=1, initial=0),
        f"{INLINE}-0-unit_amount": "4500",
        f"{INLINE}-0-currency": "eur",
        f"{INLINE}-0-recurring_interval": "",
        f"{INLINE}-0-active": "on",
    }

    with SignalRecorder(product_changed) as products, SignalRecorder(price_changed) as prices:
        response = operator_client.post("/admin/catalog/product/add/", form)

    assert response.status_code == 302, response.content.decode()[:2000]
    product = Product.objects.get()
    price = Price.objects.get()
    assert (price.product, price.unit_amount, price.currency) == (product, 4500, "eur")
    assert [call["product_id"] for call in products.calls] == [product.pk]
    assert [call["price_id"] for call in prices.calls] == [price.pk]


def test_admin_refuses_an_active_price_on_an_archived_product(operator_client):
    product = ProductFactory(active=False)

    response = operator_client.post(
        "/admin/catalog/price/add/",
        {"product": product.pk, "unit_amount": "100", "currency": "usd", "recurring_interval": "", "active": "on"},
    )

    assert response.status_code == 200
    assert "archived" in response.content.decode()
    assert not Price.objects.exists()


def test_archive_action_archives_and_signals(operator_client):
    products = ProductFactory.create_batch(2)

    with SignalRecorder(product_deleted) as recorder:
        operator_client.post(
            "/admin/catalog/product/",
            {"action": "archive_selected", "_selected_action": [p.pk for p in products]},
        )

    assert Product.objects.filter(active=True).count() == 0
    assert len(recorder.calls) == 2


def test_adding_a_user_in_the_admin_sends_user_registered(operator_client):
    with SignalRecorder(user_registered) as recorder:
        response = operator_client.post(
            "/admin/users/user/add/",
            {
                "email": "New@Example.com",
                "name": "New",
                "password1": "a-long-passphrase-9",
                "password2": "a-long-passphrase-9",
            },
        )

    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert user.check_password("a-long-passphrase-9")
    assert recorder.calls == [{"user_id": user.pk}]


def test_editing_a_product_in_the_admin_signals_the_changed_fields(operator_client):
    product = ProductFactory(name="Old")

    with SignalRecorder(product_changed) as recorder:
        response = operator_client.post(
            f"/admin/catalog/product/{product.pk}/change/",
            {
                "name": "New",
                "description": product.description,
                "active": "on",
                "metadata": "{}",
                **_inline_management(INLINE, total=0, initial=0),
            },
        )

    assert response.status_code == 302
    product.refresh_from_db()
    assert product.name == "New"
    assert recorder.calls == [{"product_id": product.pk, "created": False, "fields": ["name"]}]


@pytest.mark.parametrize(
    ("live", "link"),
    [(False, "https://dashboard.stripe.com/test/payments/pi_1"), (True, "https://dashboard.stripe.com/payments/pi_1")],
)
def test_links_into_stripes_dashboard_follow_the_mode_of_the_key(operator_client, settings, live, link):
    settings.STRIPE_LIVE_MODE = live
    order = OrderFactory(paid=True, payment_intent_id="pi_1")

    page = operator_client.get(f"/admin/payments/order/{order.pk}/change/")

    assert page.status_code == 200
    assert f'href="{link}"' in page.content.decode()


def test_payments_and_books_checks_show_what_stripe_said(operator_client):
    from apps.payments.orders.models import BooksCheck, BooksDrift, DriftKind
    from tests.payments.factories import PaymentFactory

    payment = PaymentFactory(status="failed", decline_code="insufficient_funds", card_last4="9995")
    check = BooksCheck.objects.create(
        since="2026-01-01T00:00Z", until="2026-01-02T00:00Z", finished_at="2026-01-02T00:01Z", drift_count=1
    )
    BooksDrift.objects.create(books_check=check, kind=DriftKind.ORDER_MISSING, stripe_id="ch_1", detail="a stranger")

    payments = operator_client.get("/admin/payments/payment/?decline_code=insufficient_funds").content.decode()
    order = operator_client.get(f"/admin/payments/order/{payment.order_id}/change/").content.decode()
    books = operator_client.get("/admin/payments/bookscheck/").content.decode()
    drift = operator_client.get(f"/admin/payments/bookscheck/{check.pk}/change/").content.decode()

    assert "visa 9995" in payments
    assert payment.payment_intent_id in order
    assert "1 drift(s)" in books
    assert "a stranger" in drift


@pytest.mark.parametrize(
    ("url", "table"),
    [
        ("/admin/payments/order/", "payments_order"),
        ("/admin/payments/order/?status__exact=paid", "payments_order"),
        ("/admin/payments/payment/", "payments_payment"),
        ("/admin/payments/payment/?status__exact=succeeded", "payments_payment"),
        ("/admin/payments/webhookevent/", "payments_webhookevent"),
        ("/admin/payments/webhookevent/?state__exact=failed", "payments_webhookevent"),
    ],
)
def test_a_changelist_of_a_growing_table_never_reads_it_whole(operator_client, url, table, monkeypatch):
    """The tables that grow to millions: no page counts, lists the values of or dates every row (the count
    stops at a bound, the filters offer the newest rows' values, and there is no date hierarchy)."""
    for model in (Order, Payment, WebhookEvent):  # more rows than a page, as there will be
        monkeypatch.setattr(admin.site._registry[model], "list_per_page", 1)
    PaymentFactory.create_batch(2, decline_code="insufficient_funds", status="succeeded")
    for n in range(2):
        WebhookEvent.objects.create(stripe_id=f"evt_{n}", type="charge.refunded", state=WebhookEventState.FAILED)

    with CaptureQueriesContext(connection) as queries:
        assert operator_client.get(url).status_code == 200

    whole_table_reads = [
        query["sql"]
        for query in queries
        if f'FROM "{table}"' in query["sql"] and "WHERE" not in query["sql"] and "LIMIT" not in query["sql"]
    ]
    assert whole_table_reads == []


def test_past_the_bound_a_changelist_says_at_least_and_filters_offer_the_newest_values(operator_client, monkeypatch):
    from config.bounded_count import BoundedCountPaginator

    monkeypatch.setattr(BoundedCountPaginator, "limit", 2)
    PaymentFactory(currency="usd", decline_code="expired_card")
    PaymentFactory.create_batch(2, currency="eur", decline_code="")

    payments = operator_client.get("/admin/payments/payment/").content.decode()
    few = operator_client.get("/admin/payments/payment/?currency=eur").content.decode()

    assert "at least 2 payments (narrow the list to reach older ones)" in payments
    assert "?currency=eur" in payments
    assert "?currency=usd" not in payments  # older than the newest two rows
    assert "?decline_code=expired_card" not in payments
    assert "at least" not in few
    assert "2 payments" in few
