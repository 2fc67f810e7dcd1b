import django_filters

from apps.catalog.models import Price, Product, RecurringInterval
from config.api_conventions import StrictBooleanFilter, StrictFilterSet


class ProductFilter(StrictFilterSet):
    active = StrictBooleanFilter(help_text="Staff only: `false` lists archived products.")

    class Meta:
        model = Product
        fields = ("active",)


class PriceFilter(StrictFilterSet):
    product = django_filters.NumberFilter(field_name="product_id")
    active = StrictBooleanFilter(help_text="Staff only: `false` lists archived prices.")
    currency = django_filters.CharFilter(lookup_expr="iexact")
    recurring_interval = django_filters.ChoiceFilter(choices=RecurringInterval.choices)
    recurring = StrictBooleanFilter(
        field_name="recurring_interval", lookup_expr="isnull", exclude=True, help_text="`false` lists one-off prices."
    )

    class Meta:
        model = Price
        fields = ("product", "active", "currency", "recurring_interval", "recurring")
