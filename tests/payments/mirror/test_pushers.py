"""Writing one object to Stripe (apps/payments/mirror/pushers.py): what each kind's push sends (a customer per
user, a product with its first price in one call, a new Stripe price when an amount changes, the old one
archived), under keys made of (object, version, key generation, step), and what is kept of Stripe's answer
(dj-stripe's copies, the newest `updated` of what we wrote).

Here each push on a leased row, with Stripe played by an in-memory stand-in. The mirror end to end, a real worker
pushing to the emulator, is covered in tests/journeys/test_mirror.py; an attempt killed between Stripe and the
record in tests/journeys/test_mirror_outcomes.py.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from djstripe import models as djstripe_models

from apps.payments.mirror.leases import acquire
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState, StripeWatermark
from apps.payments.mirror.outcomes import WAITING, MirrorRejected, Pushed
from apps.payments.mirror.pushers import PUSHERS
from apps.payments.mirror.specs import price_immutable
from tests.catalog.factories import PriceFactory, ProductFactory
from tests.payments.factories import MirrorRecordFactory
from tests.payments.stripe_stand_in import missing
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

OWNER = "worker-1"
CREATED = 1_767_268_800


def _push(kind: str, object_id: int, **row):
    record = MirrorRecord.objects.filter(kind=kind, object_id=object_id).first() or MirrorRecordFactory(
        kind=kind, object_id=object_id, **row
    )
    leased = acquire(record.pk, OWNER)
    if leased is WAITING:  # a price whose product is not in Stripe: no lease, nothing sent
        return leased
    return PUSHERS[kind](leased, OWNER)


def _refs(kind: str, object_id: int) -> dict:
    return {"app_ref": f"{kind}:{object_id}", "app_namespace": "testsuite"}


def _echo(object_type: str, object_id: str, **extra):
    """Stripe's answer to a write: the object with what was sent."""

    def answer(call):
        params = {key: value for key, value in call.params.items() if key not in ("expand", "default_price_data")}
        return {"id": object_id, "object": object_type, "created": CREATED, "updated": CREATED + 5, **params, **extra}

    return answer


class TestCustomers:
    def test_a_new_user_becomes_one_customer_tied_to_them(self, stripe_stand_in):
        ada = UserFactory(email="ada@example.com", name="Ada")
        stripe_stand_in.always("customers.create", _echo("customer", "cus_ada"))

        pushed = _push(MirrorKind.USER, ada.pk)

        create = stripe_stand_in.calls[0]
        assert (create.path, create.params) == (
            "customers.create",
            {"email": "ada@example.com", "name": "Ada", "metadata": _refs("users.user", ada.pk)},
        )
        assert create.idempotency_key == f"users.user:{ada.pk}:g0:create"  # the same for every version
        assert pushed == Pushed("cus_ada")
        assert djstripe_models.Customer.objects.get(id="cus_ada").subscriber == ada

    def test_a_user_in_stripe_is_updated_under_a_key_of_this_version(self, stripe_stand_in):
        ada = UserFactory(email="new@example.com")
        stripe_stand_in.always("customers.update", _echo("customer", "cus_ada"))

        _push(MirrorKind.USER, ada.pk, stripe_id="cus_ada", version=4, synced_version=3)

        update = stripe_stand_in.calls[0]
        assert (update.path, update.args, update.params["email"]) == (
            "customers.update",
            ("cus_ada",),
            "new@example.com",
        )
        assert update.idempotency_key == f"users.user:{ada.pk}:v4:g0:update"

    def test_a_user_older_than_the_mirror_adopts_the_oldest_customer_stripe_holds_for_them(self, stripe_stand_in):
        ada = UserFactory(date_joined=timezone.now() - timedelta(days=400))
        refs = _refs("users.user", ada.pk)
        stripe_stand_in.always(
            "customers.search",
            [
                {"id": "cus_newer", "object": "customer", "created": CREATED + 60, "metadata": refs},
                {"id": "cus_older", "object": "customer", "created": CREATED, "metadata": refs},
            ],
        )
        stripe_stand_in.always("customers.update", _echo("customer", "cus_older"))

        pushed = _push(MirrorKind.USER, ada.pk)

        assert stripe_stand_in.paths == ["customers.search", "customers.update"]
        assert stripe_stand_in.calls[0].params["query"] == (
            f"metadata['app_ref']:'users.user:{ada.pk}' AND metadata['app_namespace']:'testsuite'"
        )
        assert stripe_stand_in.calls[1].args == ("cus_older",)
        assert stripe_stand_in.calls[1].idempotency_key.endswith(":adopt")
        assert pushed.stripe_id == "cus_older"

    def test_a_customer_deleted_in_stripe_is_made_again(self, stripe_stand_in):
        ada = UserFactory()
        stripe_stand_in.always("customers.update", missing("customer"))
        stripe_stand_in.always("customers.search", [])
        stripe_stand_in.always("customers.create", _echo("customer", "cus_again"))

        pushed = _push(MirrorKind.USER, ada.pk, stripe_id="cus_gone", version=2, synced_version=1)

        assert stripe_stand_in.paths == ["customers.update", "customers.search", "customers.create"]
        # Not the key of the first creation, which Stripe would answer with the customer now gone.
        assert stripe_stand_in.calls[2].idempotency_key == f"users.user:{ada.pk}:g0:create:replacing:cus_gone"
        assert pushed.stripe_id == "cus_again"

    def test_a_deleted_user_deletes_their_customer_and_unties_dj_stripes_copy(self, stripe_stand_in):
        ada = UserFactory()
        djstripe_models.Customer.objects.create(id="cus_ada", livemode=False, subscriber=ada, stripe_data={})
        stripe_stand_in.always("customers.delete", {"id": "cus_ada", "object": "customer", "deleted": True})

        pushed = _push(MirrorKind.USER, ada.pk, stripe_id="cus_ada", deleted=True, version=2, synced_version=1)

        assert stripe_stand_in.calls[0].args == ("cus_ada",)
        copy = djstripe_models.Customer.objects.get(id="cus_ada")
        assert (copy.subscriber, copy.date_purged is not None, pushed.stripe_id) == (None, True, "cus_ada")

    def test_deleting_a_customer_stripe_no_longer_holds_is_done(self, stripe_stand_in):
        stripe_stand_in.always("customers.delete", missing("customer"))

        pushed = _push(MirrorKind.USER, 999_999, stripe_id="cus_gone", deleted=True)

        assert pushed.stripe_id == "cus_gone"


class TestProducts:
    def test_every_attempt_to_make_a_product_uses_one_key_whatever_its_version(self, stripe_stand_in):
        """An attempt whose answer was lost may have made it: the next, after an edit, must not make another."""
        product = ProductFactory(name="Teapot")
        stripe_stand_in.always("products.create", _echo("product", "prod_teapot"))

        _push(MirrorKind.PRODUCT, product.pk, version=1, attempts=1)
        MirrorRecord.objects.filter(kind=MirrorKind.PRODUCT).update(stripe_id="", synced_version=0, version=3)
        _push(MirrorKind.PRODUCT, product.pk)

        keys = [call.idempotency_key for call in stripe_stand_in.calls_to("products.create")]
        assert keys == [f"catalog.product:{product.pk}:g0:create"] * 2

    def test_a_new_product_and_its_first_price_are_one_stripe_write(self, stripe_stand_in):
        product = ProductFactory(name="Teapot", description="")
        price = PriceFactory(product=product, unit_amount=4500, currency="eur")
        MirrorRecordFactory(kind=MirrorKind.PRICE, object_id=price.pk)
        default_price = {
            "id": "price_teapot",
            "object": "price",
            "product": "prod_teapot",
            "active": True,
            "currency": "eur",
            "unit_amount": 4500,
            "metadata": _refs("catalog.price", price.pk),
        }
        stripe_stand_in.always("products.create", _echo("product", "prod_teapot", default_price=default_price))

        pushed = _push(MirrorKind.PRODUCT, product.pk)

        create = stripe_stand_in.calls[0]
        assert stripe_stand_in.paths == ["products.create"]
        assert "description" not in create.params  # Stripe refuses an empty one
        assert create.params["default_price_data"] == {
            "currency": "eur",
            "unit_amount": 4500,
            "metadata": _refs("catalog.price", price.pk),
        }
        assert create.params["metadata"] == _refs("catalog.product", product.pk)
        assert pushed.stripe_id == "prod_teapot"
        price_row = MirrorRecord.objects.get(kind=MirrorKind.PRICE, object_id=price.pk)
        assert (price_row.state, price_row.stripe_id, price_row.lease_owner) == (MirrorState.SYNCED, "price_teapot", "")
        assert price_row.pushed["immutable"] == price_immutable(price)
        assert djstripe_models.Price.objects.filter(id="price_teapot", product__id="prod_teapot").exists()
        assert StripeWatermark.objects.get(stripe_id="prod_teapot").updated == CREATED + 5

    def test_a_metadata_key_removed_here_is_removed_in_stripe(self, stripe_stand_in):
        product = ProductFactory(metadata={"colour": "blue"})
        stripe_stand_in.always("products.update", _echo("product", "prod_1"))

        pushed = _push(
            MirrorKind.PRODUCT,
            product.pk,
            stripe_id="prod_1",
            version=2,
            synced_version=1,
            pushed={"metadata_keys": ["app_namespace", "app_ref", "colour", "size"]},
        )

        metadata = stripe_stand_in.calls[0].params["metadata"]
        assert (metadata["colour"], metadata["size"]) == ("blue", "")
        assert pushed.pushed == {"metadata_keys": ["app_namespace", "app_ref", "colour"]}

    def test_a_product_gone_here_is_refused_for_good(self, stripe_stand_in):
        with pytest.raises(MirrorRejected, match="no longer exists locally"):
            _push(MirrorKind.PRODUCT, 999_999)

        assert stripe_stand_in.calls == []


class TestPrices:
    def _product_in_stripe(self, product, **row) -> None:
        MirrorRecordFactory(
            kind=MirrorKind.PRODUCT, object_id=product.pk, stripe_id="prod_1", state=MirrorState.SYNCED, **row
        )
        djstripe_models.Product.objects.create(
            id="prod_1", livemode=False, name="Teapot", stripe_data={"id": "prod_1", "default_price": "price_old"}
        )

    def test_a_price_whose_product_is_not_in_stripe_waits_for_it(self, stripe_stand_in):
        price = PriceFactory()
        MirrorRecordFactory(kind=MirrorKind.PRODUCT, object_id=price.product_id)

        assert _push(MirrorKind.PRICE, price.pk) is WAITING
        assert stripe_stand_in.calls == []

    def test_a_price_whose_product_stripe_refused_fails_with_the_products_reason(self, stripe_stand_in):
        price = PriceFactory()
        MirrorRecordFactory(
            kind=MirrorKind.PRODUCT, object_id=price.product_id, state=MirrorState.FAILED, last_error="Invalid name"
        )

        with pytest.raises(MirrorRejected, match="its product could not be mirrored: Invalid name"):
            _push(MirrorKind.PRICE, price.pk)

    def test_archiving_a_price_archives_the_same_stripe_price(self, stripe_stand_in):
        price = PriceFactory(active=False, currency="eur")
        self._product_in_stripe(price.product)
        stripe_stand_in.always(
            "prices.update", _echo("price", "price_old", product="prod_1", currency="eur", unit_amount=1999)
        )

        pushed = _push(
            MirrorKind.PRICE,
            price.pk,
            stripe_id="price_old",
            version=2,
            synced_version=1,
            pushed={"immutable": price_immutable(price)},
        )

        assert stripe_stand_in.paths == ["prices.update"]
        assert stripe_stand_in.calls[0].params["active"] is False
        assert pushed.stripe_id == "price_old"

    def test_a_new_amount_is_a_new_stripe_price_made_default_and_the_old_one_archived(self, stripe_stand_in):
        price = PriceFactory(unit_amount=2500, currency="eur")
        self._product_in_stripe(price.product)
        stripe_stand_in.always("prices.create", _echo("price", "price_new", currency="eur", unit_amount=2500)).always(
            "products.update", _echo("product", "prod_1", name="Teapot", active=True)
        ).always(
            "prices.update",
            lambda call: {"id": call.args[0], "object": "price", "product": "prod_1", "currency": "eur", **call.params},
        )
        old = {**price_immutable(price), "unit_amount": 1999}

        pushed = _push(
            MirrorKind.PRICE,
            price.pk,
            stripe_id="price_old",
            version=2,
            synced_version=1,
            pushed={"immutable": old},
        )

        assert stripe_stand_in.paths == ["prices.create", "products.update", "prices.update"]
        create, default, archive = stripe_stand_in.calls
        assert (create.params["unit_amount"], create.params["product"]) == (2500, "prod_1")
        assert (default.args, default.params) == (("prod_1",), {"default_price": "price_new"})
        assert (archive.args, archive.params) == (("price_old",), {"active": False})
        assert [call.idempotency_key.rsplit(":", 1)[-1] for call in stripe_stand_in.calls] == [
            "create",
            "default",
            "price_old",
        ]
        assert pushed == Pushed("price_new", {"immutable": price_immutable(price)})

    def test_a_retry_adopts_the_price_an_earlier_attempt_made_when_it_charges_the_current_amount(self, stripe_stand_in):
        price = PriceFactory(unit_amount=2500, currency="eur")
        self._product_in_stripe(price.product)
        made = {"object": "price", "product": "prod_1", "currency": "eur", "unit_amount": 2500, "active": True}
        stripe_stand_in.always(
            "prices.search",
            [
                {"id": "price_made", "created": CREATED, **made, "metadata": _refs("catalog.price", price.pk)},
                {"id": "price_later", "created": CREATED + 9, **made, "metadata": _refs("catalog.price", price.pk)},
            ],
        )
        stripe_stand_in.always("prices.list", [])
        stripe_stand_in.always("products.update", _echo("product", "prod_1", name="Teapot", active=True))

        pushed = _push(MirrorKind.PRICE, price.pk, version=1, attempts=1)  # the attempt before this one

        assert "prices.create" not in stripe_stand_in.paths
        assert pushed == Pushed("price_made", {"immutable": price_immutable(price)})

    def test_a_retry_after_an_attempt_that_may_have_made_a_price_archives_it_too(self, stripe_stand_in):
        price = PriceFactory(unit_amount=2500, currency="eur")
        self._product_in_stripe(price.product)
        refs = _refs("catalog.price", price.pk)
        # The attempt that died made it at the amount of its day: not one to adopt now.
        stripe_stand_in.always(
            "prices.search",
            [{"id": "price_lost", "object": "price", "created": CREATED, "currency": "eur", "unit_amount": 1999}],
        )
        stripe_stand_in.always("prices.create", _echo("price", "price_new", currency="eur"))
        stripe_stand_in.always(
            "prices.list",
            [
                {"id": "price_new", "object": "price", "metadata": refs},
                {"id": "price_lost", "object": "price", "metadata": refs},  # made by the attempt that died
                {"id": "price_other", "object": "price", "metadata": _refs("catalog.price", 999_999)},
            ],
        )
        stripe_stand_in.always("products.update", _echo("product", "prod_1", name="Teapot", active=True))
        stripe_stand_in.always(
            "prices.update",
            lambda call: {"id": call.args[0], "object": "price", "product": "prod_1", "currency": "eur", **call.params},
        )

        _push(MirrorKind.PRICE, price.pk, version=1, attempts=1)  # the attempt before this one

        archived = [call.args[0] for call in stripe_stand_in.calls_to("prices.update")]
        assert archived == ["price_lost"]
