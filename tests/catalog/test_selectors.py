"""The catalog's reads on their own: what shoppers and staff see, in what order, for a fixed number of queries."""

import pytest

from apps.catalog.selectors import price_list, product_get, product_list
from tests.catalog.factories import PriceFactory, ProductFactory

pytestmark = pytest.mark.django_db


class TestProducts:
    def test_archived_products_are_listed_only_when_asked_for(self):
        on_sale = ProductFactory()
        archived = ProductFactory(active=False)

        assert set(product_list()) == {on_sale}
        assert set(product_list(include_archived=True)) == {on_sale, archived}

    def test_prices_of_the_same_amount_keep_the_order_they_were_made_in(self):
        product = ProductFactory()
        first = PriceFactory(product=product, unit_amount=500, currency="eur")
        second = PriceFactory(product=product, unit_amount=500, currency="usd")
        cheaper = PriceFactory(product=product, unit_amount=300)

        [listed] = product_list()

        assert listed.active_prices == [cheaper, first, second]

    def test_an_archived_product_shown_to_staff_still_lists_only_its_active_prices(self):
        product = ProductFactory(active=False)
        kept = PriceFactory(product=product)
        PriceFactory(product=product, active=False)

        [listed] = product_list(include_archived=True)

        assert listed.active_prices == [kept]

    def test_a_product_without_prices_has_an_empty_list_not_an_error(self):
        ProductFactory()

        assert product_list().get().active_prices == []

    def test_the_list_costs_two_queries_however_many_products_and_prices(self, django_assert_num_queries):
        for product in ProductFactory.create_batch(5):
            PriceFactory.create_batch(3, product=product)

        with django_assert_num_queries(2):
            prices = [price.unit_amount for product in product_list() for price in product.active_prices]

        assert len(prices) == 15


class TestProductGet:
    def test_an_archived_product_is_none_for_shoppers_and_found_for_staff(self):
        archived = ProductFactory(active=False)

        assert product_get(product_id=archived.pk) is None
        assert product_get(product_id=archived.pk, include_archived=True) == archived

    def test_an_unknown_product_is_none(self):
        assert product_get(product_id=987_654, include_archived=True) is None

    def test_the_product_comes_with_its_active_prices(self, django_assert_num_queries):
        product = ProductFactory()
        price = PriceFactory(product=product)
        PriceFactory(product=product, active=False)

        with django_assert_num_queries(2):
            found = product_get(product_id=product.pk)
            assert found.active_prices == [price]


class TestPrices:
    def test_staff_see_every_price_shoppers_only_those_on_sale(self):
        on_sale = PriceFactory()
        archived_price = PriceFactory(active=False)
        of_archived_product = PriceFactory(product=ProductFactory(active=False))

        assert set(price_list()) == {on_sale}
        assert set(price_list(include_archived=True)) == {on_sale, archived_price, of_archived_product}

    def test_each_price_comes_with_its_product_in_the_same_query(self, django_assert_num_queries):
        PriceFactory.create_batch(4)

        with django_assert_num_queries(1):
            names = [price.product.name for price in price_list()]

        assert len(names) == 4
