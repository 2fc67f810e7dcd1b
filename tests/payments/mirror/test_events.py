"""Stripe events about the catalog and customers (apps/payments/mirror/events.py): edits made in Stripe's
dashboard come back into the catalog and are not sent back; our own writes coming back change nothing; an older
event never overwrites a newer state; in doubt, Stripe is asked once; a local change on its way wins; another
installation's objects are left alone; a customer's link to its user is kept.

Here the handlers are fed Stripe-shaped events, with Stripe played by an in-memory stand-in where a handler asks
it. The same events signed and delivered by the emulator to a live server are covered in
tests/journeys/test_webhook_processing.py (echoes, dashboard edits, out-of-order updates, deletions).
"""

import pytest
from djstripe import models as djstripe_models

from apps.catalog import services as catalog
from apps.catalog.models import Price, Product
from apps.payments.mirror import events
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState, StripeWatermark
from apps.payments.mirror.outbox import MIRROR_SYNC_TASK
from apps.payments.mirror.outcomes import CatalogOutcome
from apps.payments.mirror.specs import price_immutable
from tests.catalog.factories import PriceFactory, ProductFactory
from tests.payments.billing.factories import stripe_account
from tests.payments.factories import MirrorRecordFactory
from tests.payments.stripe_stand_in import missing
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

UPDATED = 1_767_268_800
FOREIGN = "another-installation"


def _event(event_type: str, obj: dict, event_id: str = "evt_1") -> dict:
    return {"id": event_id, "object": "event", "type": event_type, "created": UPDATED, "data": {"object": obj}}


def _refs(kind: str, object_id: int, namespace: str = "testsuite") -> dict:
    return {"app_ref": f"{kind}:{object_id}", "app_namespace": namespace}


def _mirrored(kind: str, object_id: int, stripe_id: str, **fields) -> MirrorRecord:
    return MirrorRecordFactory(
        kind=kind, object_id=object_id, stripe_id=stripe_id, state=MirrorState.SYNCED, synced_version=1, **fields
    )


@pytest.fixture
def teapot(db) -> Product:
    product = ProductFactory(name="Teapot", description="", metadata={})
    _mirrored(MirrorKind.PRODUCT, product.pk, "prod_teapot")
    StripeWatermark.objects.create(stripe_id="prod_teapot", updated=UPDATED)
    return product


def _stripe_product(product: Product, *, updated: int = UPDATED, **fields) -> dict:
    return {
        "id": "prod_teapot",
        "object": "product",
        "name": product.name,
        "description": None,
        "active": True,
        "updated": updated,
        "created": UPDATED - 3600,
        "livemode": False,
        "metadata": _refs("catalog.product", product.pk),
        **fields,
    }


class TestProducts:
    def test_a_dashboard_edit_comes_back_into_the_catalog_and_is_not_sent_back(
        self, stripe_stand_in, teapot, queued_tasks, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            outcome = events.on_product(
                _event("product.updated", _stripe_product(teapot, name="Blue teapot", updated=UPDATED + 10))
            )

        assert outcome.kind is CatalogOutcome.PRODUCT_UPDATED
        assert Product.objects.get(pk=teapot.pk).name == "Blue teapot"
        row = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=teapot.pk)
        assert (row.state, row.version, row.synced_version) == (MirrorState.SYNCED, 2, 2)
        assert queued_tasks == []
        assert StripeWatermark.objects.get(stripe_id="prod_teapot").updated == UPDATED + 10
        assert stripe_stand_in.calls == []

    def test_an_older_update_arriving_after_a_newer_one_changes_nothing(self, stripe_stand_in, teapot):
        outcome = events.on_product(_event("product.updated", _stripe_product(teapot, name="Old", updated=UPDATED - 1)))

        assert outcome.kind is CatalogOutcome.PRODUCT_STALE
        assert Product.objects.get(pk=teapot.pk).name == "Teapot"

    def test_our_own_write_coming_back_changes_nothing_and_asks_nothing(self, stripe_stand_in, teapot):
        outcome = events.on_product(_event("product.updated", _stripe_product(teapot)))

        assert outcome.kind is CatalogOutcome.UNCHANGED
        assert stripe_stand_in.calls == []

    def test_two_changes_in_one_second_are_settled_by_what_stripe_holds_now(self, stripe_stand_in, teapot):
        stripe_stand_in.answer("products.retrieve", _stripe_product(teapot, name="What Stripe holds"))

        outcome = events.on_product(_event("product.updated", _stripe_product(teapot, name="Maybe older")))

        assert outcome.kind is CatalogOutcome.PRODUCT_UPDATED
        assert Product.objects.get(pk=teapot.pk).name == "What Stripe holds"
        assert stripe_stand_in.calls[0].args == ("prod_teapot",)

    def test_a_local_change_on_its_way_to_stripe_is_not_overwritten(self, stripe_stand_in, teapot):
        MirrorRecord.objects.filter(object_id=teapot.pk).update(version=2, state=MirrorState.PENDING)

        outcome = events.on_product(
            _event("product.updated", _stripe_product(teapot, name="Dashboard", updated=UPDATED + 10))
        )

        assert outcome.kind is CatalogOutcome.LOCAL_CHANGE_PENDING
        assert Product.objects.get(pk=teapot.pk).name == "Teapot"

    def test_a_product_made_in_the_dashboard_becomes_a_local_product_that_gets_our_ref(
        self, stripe_stand_in, queued_tasks, django_capture_on_commit_callbacks, settings
    ):
        made = {
            "id": "prod_dash",
            "object": "product",
            "name": "Kettle",
            "description": "Made in the dashboard",
            "active": True,
            "updated": UPDATED,
            "metadata": {},
        }

        with django_capture_on_commit_callbacks(execute=True):
            outcome = events.on_product(_event("product.created", made))

        product = Product.objects.get(name="Kettle")
        assert outcome == CatalogOutcome.PRODUCT_CREATED.of(product=product.pk)
        row = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=product.pk)
        assert (row.stripe_id, row.state) == ("prod_dash", MirrorState.PENDING)  # one write: our app_ref
        assert queued_tasks == [(MIRROR_SYNC_TASK, (row.pk,), settings.MIRROR_COALESCE_SECONDS)]
        assert djstripe_models.Product.objects.filter(id="prod_dash").exists()

    def test_a_dashboard_edit_behind_its_products_creation_is_applied_and_sent_with_our_ref(
        self, stripe_stand_in, queued_tasks
    ):
        """Two drains, the created event first: the newer edit meets our app_ref on its way. Nothing was edited
        here, so the edit is applied, and the one write to Stripe carries it: the older name never goes back."""
        made = {"id": "prod_dash", "object": "product", "name": "Kettle", "description": None, "active": True}
        events.on_product(_event("product.created", {**made, "updated": UPDATED, "metadata": {}}))

        outcome = events.on_product(
            _event("product.updated", {**made, "name": "Blue kettle", "updated": UPDATED + 5, "metadata": {}}, "evt_2")
        )

        product = Product.objects.get(pk=MirrorRecord.objects.get(stripe_id="prod_dash").object_id)
        row = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=product.pk)
        assert outcome == CatalogOutcome.PRODUCT_UPDATED.of()
        assert product.name == "Blue kettle"
        assert row.state == MirrorState.PENDING  # the push of our app_ref, now with the newer name
        assert StripeWatermark.objects.get(stripe_id="prod_dash").updated == UPDATED + 5

    def test_a_dashboard_edit_over_a_local_edit_on_its_way_waits(self, stripe_stand_in, queued_tasks):
        made = {"id": "prod_dash", "object": "product", "name": "Kettle", "description": None, "active": True}
        events.on_product(_event("product.created", {**made, "updated": UPDATED, "metadata": {}}))
        product = Product.objects.get(name="Kettle")
        catalog.product_update(product=product, data={"name": "Kettle, renamed here"})

        outcome = events.on_product(
            _event("product.updated", {**made, "name": "Blue kettle", "updated": UPDATED + 5, "metadata": {}}, "evt_2")
        )

        assert outcome == CatalogOutcome.LOCAL_CHANGE_PENDING.of()
        assert Product.objects.get(pk=product.pk).name == "Kettle, renamed here"

    def test_a_product_of_another_installation_is_left_alone(self, stripe_stand_in):
        theirs = {
            "id": "prod_theirs",
            "object": "product",
            "name": "Theirs",
            "active": True,
            "updated": UPDATED,
            "metadata": _refs("catalog.product", 1, FOREIGN),
        }

        outcome = events.on_product(_event("product.created", theirs))

        assert outcome.kind is CatalogOutcome.OTHER_INSTALLATION
        assert not Product.objects.exists()

    def test_a_product_deleted_in_stripe_is_archived_here_and_stays_so(self, stripe_stand_in, teapot):
        deleted = events.on_product(_event("product.deleted", _stripe_product(teapot, updated=UPDATED + 1)))
        late = events.on_product(
            _event("product.updated", _stripe_product(teapot, active=True, updated=UPDATED + 2), "evt_2")
        )

        assert (deleted.kind, late.kind) == (CatalogOutcome.PRODUCT_ARCHIVED, CatalogOutcome.PRODUCT_DELETED)
        assert Product.objects.get(pk=teapot.pk).active is False

    def test_a_dashboard_edit_the_catalog_refuses_is_not_applied_and_says_why(self, stripe_stand_in, teapot):
        outcome = events.on_product(
            _event("product.updated", _stripe_product(teapot, name="x" * 300, updated=UPDATED + 10))
        )

        assert outcome.kind is CatalogOutcome.CATALOG_REFUSES
        assert "250 characters" in str(outcome)
        assert Product.objects.get(pk=teapot.pk).name == "Teapot"


class TestPrices:
    @pytest.fixture
    def price(self, teapot) -> Price:
        price = PriceFactory(product=teapot, unit_amount=4500, currency="eur")
        _mirrored(MirrorKind.PRICE, price.pk, "price_1", pushed={"immutable": price_immutable(price)})
        return price

    def _stripe_price(self, price: Price, **fields) -> dict:
        return {
            "id": "price_1",
            "object": "price",
            "product": "prod_teapot",
            "active": True,
            "currency": "eur",
            "unit_amount": 4500,
            "billing_scheme": "per_unit",
            "recurring": None,
            "livemode": False,
            "metadata": _refs("catalog.price", price.pk),
            **fields,
        }

    def test_our_own_price_coming_back_changes_nothing_and_asks_nothing(self, stripe_stand_in, price):
        outcome = events.on_price(_event("price.updated", self._stripe_price(price)))

        assert outcome.kind is CatalogOutcome.UNCHANGED
        assert stripe_stand_in.calls == []

    def test_a_price_archived_in_the_dashboard_is_checked_with_stripe_and_archived_here(
        self, stripe_stand_in, price, queued_tasks, django_capture_on_commit_callbacks
    ):
        stripe_stand_in.answer("prices.retrieve", self._stripe_price(price, active=False))

        with django_capture_on_commit_callbacks(execute=True):
            outcome = events.on_price(_event("price.updated", self._stripe_price(price, active=False)))

        assert outcome.kind is CatalogOutcome.PRICE_ARCHIVED
        assert Price.objects.get(pk=price.pk).active is False
        assert queued_tasks == []  # not sent back

    def test_a_stale_archive_event_is_overruled_by_what_stripe_holds(self, stripe_stand_in, price):
        stripe_stand_in.answer("prices.retrieve", self._stripe_price(price, active=True))

        outcome = events.on_price(_event("price.updated", self._stripe_price(price, active=False)))

        assert outcome.kind is CatalogOutcome.STRIPE_HOLDS_OURS
        assert Price.objects.get(pk=price.pk).active is True

    def test_an_earlier_stripe_price_of_a_local_price_changes_nothing(self, stripe_stand_in, price):
        outcome = events.on_price(_event("price.updated", self._stripe_price(price, id="price_before", active=False)))

        assert outcome.kind is CatalogOutcome.PRICE_SUPERSEDED
        assert Price.objects.get(pk=price.pk).active is True

    def test_a_price_gone_from_stripe_is_archived_here_and_stays_so(self, stripe_stand_in, price):
        stripe_stand_in.answer("prices.retrieve", missing("price"))

        gone = events.on_price(_event("price.updated", self._stripe_price(price, active=False)))
        late = events.on_price(_event("price.updated", self._stripe_price(price, active=True), "evt_2"))

        assert (gone.kind, late.kind) == (CatalogOutcome.PRICE_ARCHIVED, CatalogOutcome.PRICE_DELETED)
        assert Price.objects.get(pk=price.pk).active is False

    def test_a_price_made_in_the_dashboard_for_our_product_becomes_a_local_price(self, stripe_stand_in, teapot):
        made = {**self._stripe_price(teapot, id="price_dash", unit_amount=3900, metadata={})}
        made["recurring"] = {"interval": "month", "interval_count": 1}
        stripe_stand_in.answer("prices.retrieve", made)

        outcome = events.on_price(_event("price.created", made))

        price = Price.objects.get(product=teapot, unit_amount=3900)
        assert outcome == CatalogOutcome.PRICE_CREATED.of(price=price.pk)
        assert (price.currency, price.recurring_interval) == ("eur", "month")
        assert MirrorRecord.objects.get(kind=MirrorKind.PRICE, object_id=price.pk).stripe_id == "price_dash"

    def test_a_tiered_price_made_in_the_dashboard_is_not_one_the_catalog_can_hold(self, stripe_stand_in, teapot):
        tiered = {**self._stripe_price(teapot, id="price_tiers", billing_scheme="tiered", unit_amount=None)}
        tiered["metadata"] = {}
        stripe_stand_in.answer("prices.retrieve", tiered)

        outcome = events.on_price(_event("price.created", tiered))

        assert outcome.kind is CatalogOutcome.PRICE_NOT_PER_UNIT
        assert not Price.objects.exists()


class TestCustomers:
    def test_a_customer_naming_a_user_of_ours_is_linked_to_them(self, stripe_stand_in):
        stripe_account()
        ada = UserFactory()
        MirrorRecordFactory(kind=MirrorKind.USER, object_id=ada.pk, stripe_id="")
        customer = {
            "id": "cus_ada",
            "object": "customer",
            "email": ada.email,
            "created": UPDATED,
            "livemode": False,
            "metadata": _refs("users.user", ada.pk),
        }

        outcome = events.on_customer_updated(_event("customer.updated", customer))

        assert outcome.kind is CatalogOutcome.CUSTOMER_LINKED
        assert MirrorRecord.objects.get(kind=MirrorKind.USER, object_id=ada.pk).stripe_id == "cus_ada"
        assert djstripe_models.Customer.objects.get(id="cus_ada").subscriber == ada

    def test_a_customer_claiming_a_user_who_has_another_is_not_linked(self, stripe_stand_in):
        ada = UserFactory()
        _mirrored(MirrorKind.USER, ada.pk, "cus_first")
        twin = {"id": "cus_twin", "object": "customer", "metadata": _refs("users.user", ada.pk)}

        outcome = events.on_customer_updated(_event("customer.updated", twin))

        assert outcome.kind is CatalogOutcome.USER_HAS_ANOTHER_CUSTOMER
        assert MirrorRecord.objects.get(kind=MirrorKind.USER, object_id=ada.pk).stripe_id == "cus_first"

    def test_a_customer_of_another_installation_is_left_alone(self, stripe_stand_in):
        theirs = {"id": "cus_theirs", "object": "customer", "metadata": _refs("users.user", 1, FOREIGN)}

        assert events.on_customer_updated(_event("customer.updated", theirs)).kind is CatalogOutcome.OTHER_INSTALLATION

    def test_a_deleted_customer_is_unlinked_so_the_user_gets_a_new_one(self, stripe_stand_in):
        ada = UserFactory()
        _mirrored(MirrorKind.USER, ada.pk, "cus_ada")
        djstripe_models.Customer.objects.create(id="cus_ada", livemode=False, subscriber=ada, stripe_data={})

        outcome = events.on_customer_deleted(_event("customer.deleted", {"id": "cus_ada", "object": "customer"}))
        again = events.on_customer_deleted(_event("customer.deleted", {"id": "cus_ada", "object": "customer"}))

        assert (outcome.kind, again.kind) == (CatalogOutcome.CUSTOMER_UNLINKED, CatalogOutcome.NO_USER_HAD_CUSTOMER)
        assert MirrorRecord.objects.get(kind=MirrorKind.USER, object_id=ada.pk).stripe_id == ""
        assert djstripe_models.Customer.objects.get(id="cus_ada").subscriber is None
