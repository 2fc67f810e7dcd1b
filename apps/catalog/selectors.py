"""Reads of the catalog, shaped so a page of results costs the same few queries whatever its size."""

from django.db.models import Prefetch, QuerySet

from apps.catalog.models import Price, Product


def _active_prices() -> Prefetch:
    return Prefetch(
        "prices",
        queryset=Price.objects.filter(active=True).order_by("unit_amount", "id"),
        to_attr="active_prices",
    )


def product_list(*, include_archived: bool = False) -> QuerySet[Product]:
    """Products with their active prices prefetched into `active_prices`."""
    products = Product.objects.prefetch_related(_active_prices())
    return products if include_archived else products.filter(active=True)


def product_get(*, product_id: int, include_archived: bool = False) -> Product | None:
    return product_list(include_archived=include_archived).filter(pk=product_id).first()


def price_list(*, include_archived: bool = False) -> QuerySet[Price]:
    """Prices; shoppers see a price only while it and its product are both on sale."""
    prices = Price.objects.select_related("product")
    return prices if include_archived else prices.filter(active=True, product__active=True)
