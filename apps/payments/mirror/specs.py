"""What Stripe should hold for each mirrored kind, written once.

The pushers send it, the reconciler compares Stripe with it, and the webhook handlers
apply Stripe's side of it to the catalog: one `MirrorSpec` per kind, so "what should
Stripe hold for this product" has one answer.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.db import models

from apps.catalog.models import Price, Product
from apps.payments.gateway.installation import APP_REF_KEY, NAMESPACE_KEY
from apps.payments.mirror.models import MirrorKind
from apps.users.models import User


@dataclass(frozen=True)
class MirrorSpec:
    kind: MirrorKind
    model: type[models.Model]
    resource: str  # the Stripe API resource (`StripeClient.v1.<resource>`)
    wanted: Callable[[models.Model], dict]  # what Stripe should hold for the local object, field by field
    held: Callable[[Mapping], dict]  # the same fields as a Stripe object (a dict) holds them
    archived_not_deleted: bool  # Stripe keeps products and prices forever (archived); customers are deleted

    def matches(self, local: models.Model, stripe_object: Mapping) -> bool:
        return self.wanted(local) == self.held(stripe_object)


def without_refs(metadata: Mapping | None) -> dict:
    """Stripe metadata as the local object holds it: without our markers (and without empty values, which
    Stripe does not keep)."""
    return {key: value for key, value in (metadata or {}).items() if key not in (APP_REF_KEY, NAMESPACE_KEY) and value}


def _customer_wanted(user: User) -> dict:
    return {"email": user.email, "name": user.name}


def _customer_held(customer: Mapping) -> dict:
    return {"email": customer.get("email"), "name": customer.get("name") or ""}


def _product_wanted(product: Product) -> dict:
    return {
        "name": product.name,
        "description": product.description,
        "active": product.active,
        "metadata": without_refs(product.metadata),
    }


def _product_held(product: Mapping) -> dict:
    return {
        "name": product["name"],
        "description": product.get("description") or "",
        "active": product["active"],
        "metadata": without_refs(product.get("metadata")),
    }


# A Stripe price never changes these: a new price replaces it when the catalog changes any of them.
PRICE_IMMUTABLE_FIELDS = ("currency", "unit_amount", "interval", "interval_count")


def _price_wanted(price: Price) -> dict:
    return {
        "currency": price.currency,
        "unit_amount": price.unit_amount,
        "interval": price.recurring_interval,
        "interval_count": price.recurring_interval_count if price.recurring_interval else None,
        "active": price.active,
    }


def _price_held(price: Mapping) -> dict:
    return {
        "currency": price.get("currency"),
        "unit_amount": price.get("unit_amount"),
        "interval": (price.get("recurring") or {}).get("interval"),
        "interval_count": (price.get("recurring") or {}).get("interval_count"),
        "active": price.get("active"),
    }


def price_immutable(price: Price) -> dict:
    """What a Stripe price can never change, as the catalog has it now (kept with the mirror row when pushed)."""
    wanted = _price_wanted(price)
    return {field: wanted[field] for field in PRICE_IMMUTABLE_FIELDS}


def stripe_price_immutable(stripe_price: Mapping) -> dict:
    """The same fields as a Stripe price holds them, to compare with `price_immutable`."""
    held = _price_held(stripe_price)
    return {field: held[field] for field in PRICE_IMMUTABLE_FIELDS}


CUSTOMER = MirrorSpec(
    kind=MirrorKind.USER,
    model=User,
    resource="customers",
    wanted=_customer_wanted,
    held=_customer_held,
    archived_not_deleted=False,
)
PRODUCT = MirrorSpec(
    kind=MirrorKind.PRODUCT,
    model=Product,
    resource="products",
    wanted=_product_wanted,
    held=_product_held,
    archived_not_deleted=True,
)
PRICE = MirrorSpec(
    kind=MirrorKind.PRICE,
    model=Price,
    resource="prices",
    wanted=_price_wanted,
    held=_price_held,
    archived_not_deleted=True,
)

SPECS: dict[str, MirrorSpec] = {spec.kind: spec for spec in (CUSTOMER, PRODUCT, PRICE)}
