"""The catalog's filter sets on their own: what each value selects, and which values are refused rather than
quietly ignored (a client that misspells a filter must not get the whole catalog back as if it had matched)."""

import pytest

from apps.catalog.filters import PriceFilter, ProductFilter
from apps.catalog.models import Price, Product
from tests.catalog.factories import PriceFactory, ProductFactory

pytestmark = pytest.mark.django_db


def products(**params) -> set[Product]:
    filterset = ProductFilter(data=params, queryset=Product.objects.all())
    assert filterset.is_valid(), filterset.errors
    return set(filterset.qs)


def prices(**params) -> set[Price]:
    filterset = PriceFilter(data=params, queryset=Price.objects.all())
    assert filterset.is_valid(), filterset.errors
    return set(filterset.qs)


def refused(filterset_class, model, **params) -> dict:
    filterset = filterset_class(data=params, queryset=model.objects.all())
    assert not filterset.is_valid()
    return filterset.errors


class TestProductFilter:
    @pytest.mark.parametrize(("on", "off"), [("true", "false"), ("1", "0"), ("TRUE", "False"), (" true ", " false ")])
    def test_active_takes_true_or_false_in_any_case(self, on, off):
        on_sale = ProductFactory()
        archived = ProductFactory(active=False)

        assert products(active=on) == {on_sale}
        assert products(active=off) == {archived}

    def test_no_filter_lists_everything_it_is_given(self):
        both = {ProductFactory(), ProductFactory(active=False)}

        assert products() == both

    @pytest.mark.parametrize("value", ["yes", "off", "2", "truthy"])
    def test_a_value_that_is_not_true_or_false_is_refused(self, value):
        assert "active" in refused(ProductFilter, Product, active=value)

    def test_a_filter_given_without_a_value_is_refused(self):
        errors = refused(ProductFilter, Product, active="")

        assert errors["active"] == ["Give a value, or leave the parameter out."]


class TestPriceFilter:
    def test_recurring_true_lists_only_prices_billed_again(self):
        monthly = PriceFactory(recurring_interval="month")
        yearly = PriceFactory(recurring_interval="year")
        PriceFactory()

        assert prices(recurring="true") == {monthly, yearly}

    @pytest.mark.parametrize("interval", ["day", "week", "month", "year"])
    def test_each_billing_interval_selects_its_own_prices(self, interval):
        chosen = PriceFactory(recurring_interval=interval)
        for other in {"day", "week", "month", "year"} - {interval}:
            PriceFactory(recurring_interval=other)
        PriceFactory()

        assert prices(recurring_interval=interval) == {chosen}

    def test_a_product_without_prices_gives_an_empty_list_not_an_error(self):
        PriceFactory()

        assert prices(product=ProductFactory().pk) == set()

    def test_filters_combine(self):
        mug = ProductFactory()
        wanted = PriceFactory(product=mug, currency="eur", recurring_interval="month")
        PriceFactory(product=mug, currency="eur")
        PriceFactory(product=mug, currency="usd", recurring_interval="month")
        PriceFactory(currency="eur", recurring_interval="month")

        assert prices(product=mug.pk, currency="Eur", recurring="1") == {wanted}

    @pytest.mark.parametrize("param", ["product", "currency", "recurring_interval", "recurring", "active"])
    def test_any_filter_given_without_a_value_is_refused(self, param):
        assert param in refused(PriceFilter, Price, **{param: "  "})
