"""dj-stripe's own copies of the customers, products and prices we write or hear about
(apps/payments/mirror/djstripe_copies.py): kept from what Stripe answered, without the extra requests dj-stripe's
own sync makes, so its admin shows what Stripe holds.

Here from SDK objects and event dicts, with every Stripe request refused. The copies following real pushes and
dashboard edits are covered in tests/journeys/test_mirror.py
(`test_dj_stripe_copies_follow_from_stripe_answers_without_asking_for_features`) and
tests/journeys/test_mirror_outcomes.py.
"""

import logging
from decimal import Decimal

import pytest
from djstripe import models as djstripe_models

from apps.payments.mirror.djstripe_copies import store
from tests.payments.stripe_stand_in import sdk_object

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _offline(stripe_stand_in):
    """Every request dj-stripe might make fails the test."""


def _product(**fields) -> dict:
    return {
        "id": "prod_1",
        "object": "product",
        "name": "Teapot",
        "active": True,
        "created": 1_767_268_800,
        "livemode": False,
        "metadata": {"app_ref": "catalog.product:7"},
        **fields,
    }


def test_a_product_stripe_answered_is_copied_with_its_columns():
    store(djstripe_models.Product, sdk_object(_product()))

    copy = djstripe_models.Product.objects.get(id="prod_1")
    assert (copy.name, copy.active, copy.metadata) == ("Teapot", True, {"app_ref": "catalog.product:7"})
    assert copy.stripe_data["name"] == "Teapot"


def test_a_later_answer_updates_the_copy_in_place():
    store(djstripe_models.Product, _product())

    store(djstripe_models.Product, _product(name="Blue teapot", active=False))

    copies = djstripe_models.Product.objects.filter(id="prod_1")
    assert [(copy.name, copy.active) for copy in copies] == [("Blue teapot", False)]


def test_a_price_with_decimal_amounts_is_copied_as_stripes_json_says():
    store(djstripe_models.Product, _product())
    price = sdk_object(
        {
            "id": "price_1",
            "object": "price",
            "product": "prod_1",
            "active": True,
            "currency": "eur",
            "unit_amount": 4500,
            "unit_amount_decimal": Decimal("4500"),  # the SDK reads *_decimal strings as Decimal
            "nickname": None,
            "lookup_key": None,
            "metadata": {},
        }
    )

    store(djstripe_models.Price, price)

    copy = djstripe_models.Price.objects.get(id="price_1")
    assert (copy.currency, copy.product.id, copy.stripe_data["unit_amount_decimal"]) == ("eur", "prod_1", "4500")


def test_a_price_whose_product_was_never_copied_is_left_out_not_half_written(caplog):
    orphan = {"id": "price_1", "object": "price", "product": "prod_unknown", "active": True, "currency": "eur"}

    with caplog.at_level(logging.INFO, logger="apps.payments.mirror"):
        store(djstripe_models.Price, orphan)

    assert not djstripe_models.Price.objects.exists()
    assert "dj-stripe copy of price price_1 skipped: no copy of its product prod_unknown" in caplog.text


def test_a_customer_is_copied_with_its_email():
    store(djstripe_models.Customer, {"id": "cus_1", "object": "customer", "email": "ada@example.com", "metadata": {}})

    assert djstripe_models.Customer.objects.get(id="cus_1").email == "ada@example.com"
