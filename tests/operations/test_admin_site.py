"""The admin as an operator meets it: the shop's name, their models first, dj-stripe's crowd gone."""

import re

import pytest
from django.test import override_settings

from apps.payments.orders.models import OrderRefund, OrderStatus
from tests.payments.factories import OrderFactory, OrderRefundFactory
from tests.users.factories import UserFactory, grant, operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client):
    client.force_login(operator())
    return client


@override_settings(SITE_NAME="Kettle & Co")
def test_the_admin_carries_the_shops_name(operator_client):
    page = operator_client.get("/admin/").content.decode()

    assert "<title>What needs doing | Kettle &amp; Co admin</title>" in page
    assert "Kettle &amp; Co operations" in page
    assert "Django administration" not in page


def test_what_operators_use_comes_first(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get("/admin/").content.decode()

    links = re.findall(r'<th scope="row" id="([a-z_]+)-([a-z]+)">', page)
    links = [f"{app}/{model}" for app, model in dict.fromkeys(links)]
    first = ["payments/order", "payments/payment", "payments/subscriptioncheckout", "payments/mirrorrecord"]
    assert links[:4] == first
    assert links.index("catalog/product") < links.index("mail/outgoingmessage") < links.index("users/user")
    assert links.index("users/user") < links.index("djstripe/subscription")


def test_djstripe_models_the_shop_does_not_use_are_gone_and_the_rest_are_read_only(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get("/admin/").content.decode()

    djstripe = sorted(set(re.findall(r'href="/admin/djstripe/([a-z]+)/"', page)))
    assert djstripe == ["customer", "event", "invoice", "price", "product", "subscription"]
    assert client.get("/admin/djstripe/applicationfee/").status_code == 404
    assert client.get("/admin/djstripe/bankaccount/").status_code == 404
    # Read-only even for a superuser: no add page, no add button.
    assert client.get("/admin/djstripe/customer/add/").status_code == 403
    assert 'href="/admin/djstripe/customer/add/"' not in client.get("/admin/djstripe/customer/").content.decode()


def test_the_refund_page_needs_the_refund_permission(client):
    order = OrderFactory(paid=True)
    viewer = grant(UserFactory(is_staff=True), "payments.view_order", "payments.change_order")
    client.force_login(viewer)

    assert "Refund…" not in client.get(f"/admin/payments/order/{order.pk}/change/").content.decode()
    assert client.get(f"/admin/payments/order/{order.pk}/refund/").status_code == 403
    assert client.post(f"/admin/payments/order/{order.pk}/refund/", {"amount": 100}).status_code == 403
    assert not OrderRefund.objects.exists()


def test_the_refund_page_refuses_more_than_remains_before_asking_stripe(operator_client):
    order = OrderFactory(paid=True, amount_total=5000, amount_refunded=4000, status=OrderStatus.PARTIALLY_REFUNDED)

    page = operator_client.get(f"/admin/payments/order/{order.pk}/change/").content.decode()
    assert f'href="/admin/payments/order/{order.pk}/refund/"' in page
    answer = operator_client.post(
        f"/admin/payments/order/{order.pk}/refund/", {"amount": 1001, "reason": "requested_by_customer"}
    )

    assert answer.status_code == 200
    assert "Ensure this value is less than or equal to 1000." in answer.content.decode()
    assert not OrderRefund.objects.exists()


def test_a_pending_order_offers_no_refund(operator_client):
    order = OrderFactory()

    assert "Refund…" not in operator_client.get(f"/admin/payments/order/{order.pk}/change/").content.decode()


def test_an_operator_sees_an_orders_lines_transitions_and_refunds(operator_client):
    refund = OrderRefundFactory(amount=700, stripe_refund_id="re_seen")
    refund.order.transitions.create(from_status="pending", to_status="paid", cause="checkout.session.completed")

    page = operator_client.get(f"/admin/payments/order/{refund.order.pk}/change/").content.decode()

    assert 'id="transitions-group"' in page
    assert "checkout.session.completed" in page
    assert 'id="refunds-group"' in page
    assert "re_seen" in page
    assert 'id="lines-group"' in page


def test_a_pending_orders_refund_page_sends_the_operator_back(operator_client):
    order = OrderFactory()

    answer = operator_client.get(f"/admin/payments/order/{order.pk}/refund/", follow=True)

    assert answer.redirect_chain[-1][0] == f"/admin/payments/order/{order.pk}/change/"
    assert f"Order {order.pk} is pending: nothing to refund." in answer.content.decode()


def test_an_order_charged_in_another_currency_refunds_what_stripe_took(operator_client):
    order = OrderFactory(
        paid=True,
        status=OrderStatus.REVIEW,
        amount_total=5000,
        currency="eur",
        amount_charged=6000,
        currency_charged="usd",
    )

    page = operator_client.get(f"/admin/payments/order/{order.pk}/refund/").content.decode()

    assert "paid <strong>6000 usd</strong>" in page
    assert "<strong>6000</strong> can still be refunded" in page


def test_a_refund_refused_under_the_lock_is_an_error_on_the_page_not_a_500(operator_client, monkeypatch):
    from django.core.exceptions import ValidationError

    from apps.payments.orders import admin as orders_admin

    order = OrderFactory(paid=True)

    def refund_landed_meanwhile(**kwargs):
        # What the service says when another refund took the rest between the form's check and the order's lock.
        raise ValidationError("only 0 of 5000 remains to refund")

    monkeypatch.setattr(orders_admin, "order_refund", refund_landed_meanwhile)
    answer = operator_client.post(
        f"/admin/payments/order/{order.pk}/refund/", {"amount": 5000, "reason": "requested_by_customer"}
    )

    assert answer.status_code == 200
    assert "only 0 of 5000 remains to refund" in answer.content.decode()
