import pytest
from django.db import transaction

from apps.catalog import services as catalog
from apps.payments.orders.lifecycle import CartLine
from tests.users.factories import UserFactory


@pytest.fixture
def customer(db):
    return UserFactory(email="ada@example.com", name="Ada")


@pytest.fixture
def cart(db):
    """Two lines in euros, one of them with a name HTML must escape."""
    with transaction.atomic():
        mugs = catalog.price_create(
            product=catalog.product_create(name="Mug & Saucer <b>"), unit_amount=1250, currency="eur"
        )
        tea = catalog.price_create(product=catalog.product_create(name="Tea"), unit_amount=699, currency="eur")
    return [CartLine(price=mugs, quantity=2), CartLine(price=tea, quantity=1)]
