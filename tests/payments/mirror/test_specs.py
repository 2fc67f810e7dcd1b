"""What Stripe should hold for each mirrored kind (apps/payments/mirror/specs.py), written once: the pushers send
it, the reconciler compares Stripe with it, and a price's amount, currency and recurrence decide whether a new
Stripe price is needed.

Here the comparison itself, local rows against Stripe-shaped objects. Drift found and repaired in Stripe by
`stripe_reconcile` is covered in tests/payments/mirror/test_commands_and_api.py (`TestStripeReconcile`), a
new amount becoming a new Stripe price in tests/journeys/test_mirror.py.
"""

import pytest

from apps.payments.mirror.specs import CUSTOMER, PRICE, PRODUCT, price_immutable, without_refs
from tests.catalog.factories import PriceFactory, ProductFactory
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

REFS = {"app_ref": "catalog.product:7", "app_namespace": "testsuite"}


def _stripe_product(product, **fields) -> dict:
    return {
        "id": "prod_1",
        "object": "product",
        "name": product.name,
        "description": product.description or None,
        "active": product.active,
        "metadata": {**REFS, **product.metadata},
        **fields,
    }


def _stripe_price(price, **fields) -> dict:
    recurring = (
        {"interval": price.recurring_interval, "interval_count": price.recurring_interval_count}
        if price.recurring_interval
        else None
    )
    return {
        "id": "price_1",
        "object": "price",
        "currency": price.currency,
        "unit_amount": price.unit_amount,
        "recurring": recurring,
        "active": price.active,
        "metadata": REFS,
        **fields,
    }


class TestProducts:
    def test_a_product_matches_what_stripe_holds_whatever_our_markers_say(self):
        product = ProductFactory(name="Teapot", description="", metadata={"colour": "blue"})

        assert PRODUCT.matches(product, _stripe_product(product))
        assert PRODUCT.matches(
            product, _stripe_product(product, metadata={"colour": "blue"})
        )  # marked before namespaces

    @pytest.mark.parametrize(
        "drift",
        [{"name": "Kettle"}, {"active": False}, {"description": "A kettle"}, {"metadata": {**REFS, "colour": "red"}}],
        ids=["name", "archived", "description", "metadata"],
    )
    def test_a_product_edited_on_either_side_differs(self, drift):
        product = ProductFactory(name="Teapot", description="", metadata={"colour": "blue"})

        assert not PRODUCT.matches(product, _stripe_product(product, **drift))

    def test_a_metadata_key_stripe_holds_empty_is_no_key_at_all(self):
        product = ProductFactory(metadata={})

        assert PRODUCT.matches(product, _stripe_product(product, metadata={**REFS, "removed": ""}))
        assert without_refs({**REFS, "colour": "blue", "removed": ""}) == {"colour": "blue"}


class TestCustomers:
    def test_a_customer_without_a_name_matches_a_user_without_one(self):
        user = UserFactory(email="ada@example.com", name="")

        assert CUSTOMER.matches(user, {"id": "cus_1", "email": "ada@example.com", "name": None})
        assert not CUSTOMER.matches(user, {"id": "cus_1", "email": "old@example.com", "name": None})


class TestPrices:
    def test_a_one_off_and_a_monthly_price_match_their_stripe_prices(self):
        one_off = PriceFactory(unit_amount=1999, currency="usd")
        monthly = PriceFactory(unit_amount=1500, currency="eur", recurring_interval="month")

        assert PRICE.matches(one_off, _stripe_price(one_off))
        assert PRICE.matches(monthly, _stripe_price(monthly))

    @pytest.mark.parametrize(
        "drift",
        [
            {"unit_amount": 2000},
            {"currency": "eur"},
            {"recurring": {"interval": "month", "interval_count": 1}},
            {"active": False},
        ],
        ids=["amount", "currency", "recurrence", "archived"],
    )
    def test_a_price_that_differs_in_stripe_does_not_match(self, drift):
        price = PriceFactory(unit_amount=1999, currency="usd")

        assert not PRICE.matches(price, _stripe_price(price, **drift))

    def test_archiving_changes_no_immutable_field_but_amount_and_period_do(self):
        price = PriceFactory(unit_amount=1500, currency="eur", recurring_interval="month")
        before = price_immutable(price)

        price.active = False
        archived = price_immutable(price)
        price.recurring_interval_count = 3
        quarterly = price_immutable(price)

        assert before == {"currency": "eur", "unit_amount": 1500, "interval": "month", "interval_count": 1}
        assert archived == before  # archiving updates the Stripe price in place
        assert quarterly != before  # a new Stripe price

    def test_a_one_off_price_has_no_interval_count_whatever_its_default(self):
        assert price_immutable(PriceFactory(recurring_interval=None))["interval_count"] is None
