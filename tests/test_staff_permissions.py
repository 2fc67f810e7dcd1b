"""Staff can do what their permissions say, no more: in the admin's actions and in the staff API alike."""

import pytest
from django.utils import timezone

from apps.catalog import services as catalog
from apps.payments.mirror.models import MirrorRecord, MirrorState
from apps.payments.orders.models import Order, OrderRefund, OrderStatus
from apps.payments.webhooks.models import WebhookEvent
from tests.catalog.factories import PriceFactory, ProductFactory
from tests.helpers import client_for
from tests.payments.factories import PaymentFactory
from tests.users.factories import UserFactory, grant

pytestmark = pytest.mark.django_db

ORDERS = "/admin/payments/order/"


def _paid_order(**fields) -> Order:
    values = {
        "user": UserFactory(),
        "status": OrderStatus.PAID,
        "currency": "eur",
        "amount_total": 4500,
        "amount_charged": 4500,
        "currency_charged": "eur",
        "payment_intent_id": "pi_paid",
        "paid_at": timezone.now(),
        **fields,
    }
    return Order.objects.create(**values)


def _staff(*perms: str):
    return grant(UserFactory(is_staff=True), *perms)


def _admin_as(client, user):
    client.force_login(user)
    return client


def _actions_offered(client, url: str) -> set[str]:
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["action_form"]  # None when no action is offered at all
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


class TestAdminActions:
    def test_view_only_staff_sees_orders_but_no_action_and_cannot_post_one(self, client):
        order = _paid_order()
        viewer = _admin_as(client, _staff("payments.view_order"))

        offered = _actions_offered(viewer, ORDERS)
        for action in ("refund_in_full", "cancel", "accept_payment"):
            viewer.post(ORDERS, {"action": action, "_selected_action": [order.pk]})

        assert offered == set()
        order.refresh_from_db()
        assert order.status == OrderStatus.PAID
        assert not OrderRefund.objects.exists()

    def test_refunds_need_the_refund_permission_not_only_change(self, client):
        order = _paid_order()
        changer = _admin_as(client, _staff("payments.view_order", "payments.change_order"))

        offered = _actions_offered(changer, ORDERS)
        changer.post(ORDERS, {"action": "refund_in_full", "_selected_action": [order.pk]})
        # Canceling a paid order refunds it: the same permission is asked for.
        answer = changer.post(ORDERS, {"action": "cancel", "_selected_action": [order.pk]}, follow=True)

        assert offered == {"cancel", "accept_payment"}
        assert "needs the &#x27;Can refund order&#x27; permission" in answer.content.decode()
        order.refresh_from_db()
        assert order.status == OrderStatus.PAID
        assert not OrderRefund.objects.exists()

    def test_the_refund_permission_offers_the_refund(self, client):
        refunder = _admin_as(client, _staff("payments.view_order", "payments.refund_order"))

        assert _actions_offered(refunder, ORDERS) == {"refund_in_full"}

    def test_mirror_again_needs_change(self, client, settings):
        settings.STRIPE_MIRROR_ENABLED = True
        product = catalog.product_create(name="Tea")
        record = MirrorRecord.objects.get(object_id=product.pk)
        MirrorRecord.objects.filter(pk=record.pk).update(state=MirrorState.FAILED)
        viewer = _admin_as(client, _staff("payments.view_mirrorrecord"))

        offered = _actions_offered(viewer, "/admin/payments/mirrorrecord/")
        viewer.post("/admin/payments/mirrorrecord/", {"action": "mirror_again", "_selected_action": [record.pk]})

        assert offered == set()
        record.refresh_from_db()
        assert (record.state, record.version) == (MirrorState.FAILED, 1)

    def test_process_again_needs_change(self, client):
        parked = WebhookEvent.objects.create(stripe_id="evt_parked", type="product.updated", state="failed")
        viewer = _admin_as(client, _staff("payments.view_webhookevent"))

        offered = _actions_offered(viewer, "/admin/payments/webhookevent/")
        viewer.post("/admin/payments/webhookevent/", {"action": "process_again", "_selected_action": [parked.pk]})

        assert offered == set()
        parked.refresh_from_db()
        assert parked.state == "failed"

    def test_archive_needs_change(self, client):
        product = ProductFactory()
        viewer = _admin_as(client, _staff("catalog.view_product"))

        offered = _actions_offered(viewer, "/admin/catalog/product/")
        viewer.post("/admin/catalog/product/", {"action": "archive_selected", "_selected_action": [product.pk]})

        assert offered == set()
        product.refresh_from_db()
        assert product.active

    def test_price_archive_needs_change(self, client):
        price = PriceFactory()
        viewer = _admin_as(client, _staff("catalog.view_price"))

        offered = _actions_offered(viewer, "/admin/catalog/price/")
        viewer.post("/admin/catalog/price/", {"action": "archive_selected", "_selected_action": [price.pk]})

        assert offered == set()
        price.refresh_from_db()
        assert price.active
        changer = _admin_as(client, _staff("catalog.view_price", "catalog.change_price"))
        assert "archive_selected" in _actions_offered(changer, "/admin/catalog/price/")
        changer.post("/admin/catalog/price/", {"action": "archive_selected", "_selected_action": [price.pk]})
        price.refresh_from_db()
        assert not price.active

    def test_djstripe_stripe_actions_are_for_superusers_only(self, client):
        url = "/admin/djstripe/customer/action/_resync_instances/customer/"
        staff = _admin_as(client, _staff("djstripe.view_customer", "djstripe.change_customer"))

        offered = _actions_offered(staff, "/admin/djstripe/customer/")
        confirm = staff.post(url, {"_selected_action": []})

        assert not offered & {"_resync_instances", "_sync_all_instances"}
        assert confirm.status_code == 403
        superuser = _admin_as(client, UserFactory(is_staff=True, is_superuser=True))
        assert superuser.post(url, {"_selected_action": []}).status_code == 200

    def test_subscriptions_are_read_in_the_admin_and_changed_only_through_the_api(self, client):
        superuser = _admin_as(client, UserFactory(is_staff=True, is_superuser=True))

        offered = _actions_offered(superuser, "/admin/djstripe/subscription/")
        cancel = superuser.post("/admin/djstripe/subscription/action/_cancel/subscription/", {"_selected_action": []})

        assert not offered & {"_resync_instances", "_sync_all_instances", "_cancel", "delete_selected"}
        assert cancel.status_code != 200


class TestStaffApi:
    def test_being_staff_opens_nothing_by_itself(self):
        bare = client_for(UserFactory(is_staff=True))
        order = _paid_order()

        assert bare.get("/api/v1/payments/mirror/").status_code == 403
        assert bare.get("/api/v1/payments/stats").status_code == 403
        assert bare.post(f"/api/v1/orders/{order.pk}/refunds", {"amount": 100}, format="json").status_code == 403
        assert bare.get("/api/v1/orders").json()["count"] == 0  # only their own
        payment = PaymentFactory(order=order)
        assert bare.get("/api/v1/payments").json()["count"] == 0  # only their own, not everyone's
        assert bare.get(f"/api/v1/payments/{payment.pk}").status_code == 404
        assert client_for(_staff("payments.view_payment")).get("/api/v1/payments").json()["count"] == 1
        assert bare.post("/api/v1/products", {"name": "Forged"}, format="json").status_code == 403

    def test_view_permissions_read_and_change_permissions_write(self, settings):
        settings.STRIPE_MIRROR_ENABLED = True
        record = MirrorRecord.objects.get(object_id=catalog.product_create(name="Tea").pk)
        viewer = client_for(_staff("payments.view_mirrorrecord", "payments.view_order"))
        changer = client_for(_staff("payments.view_mirrorrecord", "payments.change_mirrorrecord"))
        _paid_order()

        assert viewer.get("/api/v1/payments/mirror/").status_code == 200
        assert viewer.get("/api/v1/payments/stats").status_code == 200
        assert viewer.get("/api/v1/orders").json()["count"] == 1
        assert viewer.post(f"/api/v1/payments/mirror/{record.pk}/retry").status_code == 403
        assert changer.post(f"/api/v1/payments/mirror/{record.pk}/retry").status_code == 202

    def test_refunds_need_the_refund_permission(self):
        order = _paid_order()
        viewer = client_for(_staff("payments.view_order", "payments.change_order"))

        refund = viewer.post(f"/api/v1/orders/{order.pk}/refunds", {"amount": 100}, format="json")
        cancel = viewer.post(f"/api/v1/orders/{order.pk}/cancel")

        assert refund.status_code == 403
        assert "payments.refund_order" in refund.json()["detail"]
        assert cancel.status_code == 409  # canceling a paid order is a refund
        order.refresh_from_db()
        assert order.status == OrderStatus.PAID

    def test_canceling_another_users_order_needs_change(self):
        pending = _paid_order(status=OrderStatus.PENDING, paid_at=None, amount_charged=0, currency_charged="")
        viewer = client_for(_staff("payments.view_order"))

        answer = viewer.post(f"/api/v1/orders/{pending.pk}/cancel")

        assert answer.status_code == 403
        pending.refresh_from_db()
        assert pending.status == OrderStatus.PENDING

    def test_catalog_writes_follow_the_model_permissions(self):
        adder = client_for(_staff("catalog.add_product"))
        product = ProductFactory()

        created = adder.post("/api/v1/products", {"name": "Kettle"}, format="json")
        edited = adder.patch(f"/api/v1/products/{product.pk}", {"name": "Renamed"}, format="json")
        archived = adder.delete(f"/api/v1/products/{product.pk}")

        assert created.status_code == 201
        assert (edited.status_code, archived.status_code) == (403, 403)
        product.refresh_from_db()
        assert (product.name, product.active) != ("Renamed", False)
        assert product.active


class TestStaffCannotPromoteThemselves:
    def test_change_user_alone_cannot_grant_permissions(self, client):
        editor = _staff("users.view_user", "users.change_user")
        _admin_as(client, editor)

        page = client.get(f"/admin/users/user/{editor.pk}/change/")
        client.post(
            f"/admin/users/user/{editor.pk}/change/",
            {"email": editor.email, "name": editor.name, "is_active": "on", "is_staff": "on", "is_superuser": "on"},
        )

        assert page.status_code == 200
        assert 'name="is_superuser"' not in page.content.decode()  # shown read-only, not as a checkbox
        editor.refresh_from_db()
        assert not editor.is_superuser

    def test_nor_take_over_an_operators_account(self, client):
        superuser = UserFactory(is_staff=True, is_superuser=True)
        _admin_as(client, _staff("users.view_user", "users.change_user"))

        password_page = client.post(
            f"/admin/users/user/{superuser.pk}/password/",
            {"password1": "taken-over-passphrase-99", "password2": "taken-over-passphrase-99"},
        )

        assert password_page.status_code == 403
        superuser.refresh_from_db()
        assert not superuser.check_password("taken-over-passphrase-99")


def test_saving_an_order_in_the_admin_writes_nothing_back(client):
    order = _paid_order()
    _admin_as(client, _staff("payments.view_order", "payments.change_order"))
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.REFUNDED, amount_refunded=4500)  # a webhook, meanwhile

    client.post(f"/admin/payments/order/{order.pk}/change/", {"_save": "Save"})

    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == (OrderStatus.REFUNDED, 4500)
