"""The mirror end to end: a real Celery worker on Redis and PostgreSQL, the Stripe emulator over HTTP."""

import time
from datetime import timedelta

import pytest
import stripe
from django.db import connection, transaction
from django.utils import timezone
from djstripe import models as djstripe_models

from apps.catalog import services as catalog
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.mirror.refs import stripe_id_of
from apps.users import services as users
from apps.users.models import User
from tests.payments.helpers import settled, stripe_objects_by_ref, wait_until

pytestmark = pytest.mark.integration
PASSWORD = "a-long-unusual-passphrase-42"


def _client(emulator) -> stripe.StripeClient:
    return stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url})


def _record(kind: str, object_id: int) -> MirrorRecord:
    return MirrorRecord.objects.get(kind=kind, object_id=object_id)


def _product_with_price(name: str = "Teapot", amount: int = 4500, currency: str = "eur"):
    with transaction.atomic():
        product = catalog.product_create(name=name, description="Cast iron", metadata={"sku": name[:8]})
        price = catalog.price_create(product=product, unit_amount=amount, currency=currency)
    return product, price


class TestUsers:
    def test_a_registered_user_becomes_one_customer(self, mirror):
        user = users.user_create(email="ada@example.com", password=PASSWORD, name="Ada")

        wait_until(settled, message="the customer")
        record = _record(MirrorKind.USER, user.pk)
        customer = _client(mirror).v1.customers.retrieve(record.stripe_id)
        assert record.state == MirrorState.SYNCED
        assert (customer.email, customer.name, customer.metadata.app_ref) == (
            "ada@example.com",
            "Ada",
            f"users.user:{user.pk}",
        )
        assert stripe_objects_by_ref(mirror, "customers") == {f"users.user:{user.pk}": [record.stripe_id]}
        assert djstripe_models.Customer.objects.get(id=record.stripe_id).subscriber == user

    def test_changes_follow_and_deletion_deletes_the_customer(self, mirror):
        user = users.user_create(email="ada@example.com", password=PASSWORD, name="Ada")
        wait_until(settled)
        customer_id = _record(MirrorKind.USER, user.pk).stripe_id

        users.user_update(user=user, data={"name": "Ada Lovelace", "email": "ada@lovelace.org"})
        wait_until(settled)
        changed = _client(mirror).v1.customers.retrieve(customer_id)
        users.user_delete(user=User.objects.get(pk=user.pk))
        wait_until(settled)

        assert (changed.name, changed.email) == ("Ada Lovelace", "ada@lovelace.org")
        assert _client(mirror).v1.customers.retrieve(customer_id).deleted is True

    def test_a_customer_already_in_stripe_for_the_user_is_adopted(self, mirror, settings):
        settings.STRIPE_MIRROR_ENABLED = False
        user = users.user_create(email="ada@example.com", password=PASSWORD)
        User.objects.filter(pk=user.pk).update(
            date_joined=timezone.now() - timedelta(days=30)
        )  # from before the mirror
        settings.STRIPE_MIRROR_ENABLED = True
        # Another installation sharing the Stripe account has a user with the same id, and saved cards.
        theirs = _client(mirror).v1.customers.create(
            params={
                "email": "someone-else@example.com",
                "metadata": {"app_ref": f"users.user:{user.pk}", "app_namespace": "another-laptop"},
            }
        )
        earlier = _client(mirror).v1.customers.create(
            params={
                "email": "old@example.com",
                "metadata": {"app_ref": f"users.user:{user.pk}", "app_namespace": settings.STRIPE_APP_NAMESPACE},
            }
        )

        users.user_update(user=user, data={"name": "Ada"})
        wait_until(settled)

        assert _record(MirrorKind.USER, user.pk).stripe_id == earlier.id
        assert stripe_objects_by_ref(mirror, "customers") == {f"users.user:{user.pk}": [earlier.id]}
        assert _client(mirror).v1.customers.retrieve(earlier.id).email == "ada@example.com"
        assert _client(mirror).v1.customers.retrieve(theirs.id).email == "someone-else@example.com"

    def test_a_customer_of_another_installation_is_never_adopted(self, mirror, settings):
        settings.STRIPE_MIRROR_ENABLED = False
        user = users.user_create(email="ada@example.com", password=PASSWORD)
        User.objects.filter(pk=user.pk).update(date_joined=timezone.now() - timedelta(days=30))
        settings.STRIPE_MIRROR_ENABLED = True
        for namespace in ("another-laptop", None):  # another installation's, and one written before namespaces
            metadata = {"app_ref": f"users.user:{user.pk}", **({"app_namespace": namespace} if namespace else {})}
            _client(mirror).v1.customers.create(params={"email": "theirs@example.com", "metadata": metadata})

        users.user_update(user=user, data={"name": "Ada"})
        wait_until(settled)

        mine = _client(mirror).v1.customers.retrieve(_record(MirrorKind.USER, user.pk).stripe_id)
        assert (mine.email, mine.metadata.app_namespace) == ("ada@example.com", settings.STRIPE_APP_NAMESPACE)
        untouched = _client(mirror).v1.customers.search(params={"query": "email:'theirs@example.com'"}).data
        assert len(untouched) == 2


class TestWorkers:
    def test_a_worker_keeps_its_database_connection_between_tasks(self, mirror):
        def sessions_opened() -> int:
            time.sleep(1.5)  # a backend reports its statistics within a second of going idle
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
                return cursor.fetchone()[0]

        before = sessions_opened()
        for n in range(12):
            users.user_create(email=f"user{n}@example.com", password=PASSWORD)
        wait_until(settled, message="twelve customers")

        # Twelve mirror tasks and twelve welcome mails, on two workers of two processes each.
        assert sessions_opened() - before <= 4 + 1  # (+ this test's own reads)


class TestCatalog:
    def test_a_product_and_its_price_are_one_stripe_write(self, mirror):
        product, price = _product_with_price()

        wait_until(settled, message="the product and its price")
        stripe_product = _client(mirror).v1.products.retrieve(_record(MirrorKind.PRODUCT, product.pk).stripe_id)
        stripe_price = _client(mirror).v1.prices.retrieve(stripe_product.default_price)
        assert (stripe_product.name, stripe_product.description, stripe_product.active) == ("Teapot", "Cast iron", True)
        assert stripe_product.metadata.to_dict() == {
            "sku": "Teapot",
            "app_ref": f"catalog.product:{product.pk}",
            "app_namespace": "testsuite",
        }
        assert (stripe_price.unit_amount, stripe_price.currency) == (4500, "eur")
        assert stripe_price.metadata.app_ref == f"catalog.price:{price.pk}"
        assert stripe_id_of(MirrorKind.PRICE, price.pk) == stripe_price.id
        writes = [r for r in mirror.requests_seen(method="POST") if r["status"] == 200]
        assert [w["endpoint"] for w in writes] == ["/v1/products"]
        assert djstripe_models.Price.objects.get(id=stripe_price.id).product.id == stripe_product.id

    def test_a_second_price_is_its_own_price_in_stripe(self, mirror):
        product, _ = _product_with_price()
        wait_until(settled)

        usd = catalog.price_create(product=product, unit_amount=5000, currency="usd")
        wait_until(settled)

        stripe_price = _client(mirror).v1.prices.retrieve(stripe_id_of(MirrorKind.PRICE, usd.pk))
        assert (stripe_price.unit_amount, stripe_price.currency) == (5000, "usd")
        assert stripe_price.product == _record(MirrorKind.PRODUCT, product.pk).stripe_id

    def test_a_new_amount_is_a_new_stripe_price_made_default_and_the_old_one_archived(self, mirror):
        product, price = _product_with_price(amount=4500)
        wait_until(settled)
        old_id = stripe_id_of(MirrorKind.PRICE, price.pk)

        catalog.price_update(price=price, data={"unit_amount": 3900})
        wait_until(settled)

        new_id = stripe_id_of(MirrorKind.PRICE, price.pk)
        client = _client(mirror)
        assert new_id != old_id
        assert client.v1.prices.retrieve(new_id).unit_amount == 3900
        assert client.v1.prices.retrieve(old_id).active is False
        assert client.v1.products.retrieve(_record(MirrorKind.PRODUCT, product.pk).stripe_id).default_price == new_id
        assert sorted(stripe_objects_by_ref(mirror, "prices")[f"catalog.price:{price.pk}"]) == sorted([old_id, new_id])

    def test_archiving_archives_in_stripe_and_removed_metadata_goes_too(self, mirror):
        product, price = _product_with_price()
        wait_until(settled)

        catalog.product_update(product=product, data={"metadata": {}})
        catalog.product_archive(product=product)
        catalog.price_archive(price=price)
        wait_until(settled)

        client = _client(mirror)
        stripe_product = client.v1.products.retrieve(_record(MirrorKind.PRODUCT, product.pk).stripe_id)
        assert stripe_product.active is False
        assert stripe_product.metadata.to_dict() == {
            "app_ref": f"catalog.product:{product.pk}",
            "app_namespace": "testsuite",
        }
        assert client.v1.prices.retrieve(stripe_id_of(MirrorKind.PRICE, price.pk)).active is False

    def test_dj_stripe_copies_follow_from_stripe_answers_without_asking_for_features(self, mirror):
        product, price = _product_with_price(amount=4500)
        wait_until(settled)
        catalog.product_update(product=product, data={"name": "Kettle"})
        catalog.price_update(price=price, data={"unit_amount": 3900})
        wait_until(settled)

        stripe_product_id = _record(MirrorKind.PRODUCT, product.pk).stripe_id
        copy = djstripe_models.Product.objects.get(id=stripe_product_id)
        new_price_id = stripe_id_of(MirrorKind.PRICE, price.pk)
        assert (copy.name, copy.active, copy.stripe_data["name"]) == ("Kettle", True, "Kettle")
        assert copy.stripe_data["default_price"] == new_price_id
        copies = {p.id: (p.active, p.stripe_data["unit_amount"]) for p in djstripe_models.Price.objects.all()}
        assert copies[new_price_id] == (True, 3900)
        assert sorted(copies.values()) == [(False, 4500), (True, 3900)]
        # dj-stripe's own sync asks Stripe for a product's features each time; the copy is made from the answer held.
        assert mirror.requests_seen(path_prefix=f"/v1/products/{stripe_product_id}/features") == []
