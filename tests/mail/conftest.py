import pytest
from django.db import transaction

from apps.catalog import services as catalog
from apps.payments import orders
from apps.payments.models import OrderStatus
from tests.payments.conftest import shop, webhooks  # noqa: F401 - the shop the journey tests buy from
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
    return [orders.CartLine(price=mugs, quantity=2), orders.CartLine(price=tea, quantity=1)]


def paid_order(*, user, lines):
    """An order paid through the one transition function, as a webhook would pay it."""
    order = orders.order_create(user=user, lines=lines)
    orders.order_transition(order_id=order.pk, to=OrderStatus.PAID, cause="test", payment_intent_id="pi_test")
    order.refresh_from_db()
    return order
