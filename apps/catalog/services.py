"""Every write to the catalog goes through here; each sends the matching signal after the write."""

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.catalog.models import Price, Product
from apps.catalog.signals import price_changed, price_deleted, product_changed, product_deleted

PRODUCT_FIELDS = ("name", "description", "active", "metadata")
PRICE_FIELDS = ("unit_amount", "currency", "recurring_interval", "recurring_interval_count", "trial_days", "active")
ARCHIVED_PRODUCT = "This product is archived; it cannot have active prices."


def _apply_changes(instance, data: dict, allowed: tuple[str, ...]) -> list[str]:
    """Set the fields of `data` that differ on `instance`; return their names."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValidationError({field: ["This field cannot be changed."] for field in unknown})
    changed = [field for field in allowed if field in data and getattr(instance, field) != data[field]]
    for field in changed:
        setattr(instance, field, data[field])
    return changed


def _validated(price: Price) -> None:
    """Django checks each of the table's constraints with a query of its own, in a savepoint (16 round trips
    a price); the fields' validators and `Price.clean` check the same rules in Python (a test holds them to
    every constraint), the database still enforces them, and the product was just locked, so it exists."""
    price.full_clean(exclude={"product"}, validate_constraints=False)


def _lock_product(product_id: int) -> Product:
    # Row lock: a price is never added to a product that is being archived at the same moment. Every write
    # of a product or its prices takes it first, so their locks (and their receivers') come in one order.
    return Product.objects.select_for_update().get(pk=product_id)


@transaction.atomic
def product_create(*, name: str, description: str = "", active: bool = True, metadata: dict | None = None) -> Product:
    """Create a product; sends `product_changed` with `created=True`."""
    product = Product(name=name, description=description, active=active, metadata=metadata or {})
    product.full_clean()
    product.save()
    product_changed.send(sender=Product, product_id=product.pk, created=True, fields=list(PRODUCT_FIELDS))
    return product


def product_update(*, product: Product, data: dict, locked: bool = False) -> Product:
    """Change the given fields; sends `product_changed` only when something changed.

    `locked`: the caller's transaction holds `product`'s row, read with `select_for_update` a moment ago (a
    webhook applying a dashboard edit): it is changed as read, with no second read and no savepoint, and a
    refusal comes before any write."""
    if not locked:
        with transaction.atomic():
            return product_update(product=_lock_product(product.pk), data=data, locked=True)
    changed = _apply_changes(product, data, PRODUCT_FIELDS)
    if not changed:
        return product
    product.full_clean()
    with transaction.atomic(savepoint=False):  # the row and its receivers' writes: one transaction
        product.save(update_fields=[*changed, "updated_at"])
        product_changed.send(sender=Product, product_id=product.pk, created=False, fields=changed)
    return product


@transaction.atomic
def product_archive(*, product: Product) -> Product:
    """Withdraw a product from sale; the row stays so orders keep their history. Sends `product_deleted`."""
    product = _lock_product(product.pk)
    if not product.active:
        return product
    product.active = False
    product.save(update_fields=["active", "updated_at"])
    product_deleted.send(sender=Product, product_id=product.pk)
    return product


@transaction.atomic
def price_create(
    *,
    product: Product,
    unit_amount: int,
    currency: str,
    recurring_interval: str | None = None,
    recurring_interval_count: int = 1,
    trial_days: int | None = None,
    active: bool = True,
) -> Price:
    """Create a price in minor units; refused on an archived product. Sends `price_changed` with `created=True`."""
    product = _lock_product(product.pk)
    if active and not product.active:
        raise ValidationError({"product": [ARCHIVED_PRODUCT]})
    price = Price(
        product=product,
        unit_amount=unit_amount,
        currency=currency.lower(),
        recurring_interval=recurring_interval or None,
        recurring_interval_count=recurring_interval_count or 1,
        trial_days=trial_days or None,
        active=active,
    )
    _validated(price)
    price.save()
    price_changed.send(sender=Price, price_id=price.pk, product_id=product.pk, created=True, fields=list(PRICE_FIELDS))
    return price


@transaction.atomic
def price_update(*, price: Price, data: dict) -> Price:
    """Change amount, currency, billing period, trial or active; sends `price_changed` only when something changed."""
    product = _lock_product(price.product_id)
    price = Price.objects.select_for_update().get(pk=price.pk)
    if "currency" in data:
        data = {**data, "currency": data["currency"].lower()}
    if "recurring_interval" in data:
        data = {**data, "recurring_interval": data["recurring_interval"] or None}
    changed = _apply_changes(price, data, PRICE_FIELDS)
    if not changed:
        return price
    if price.active and not product.active:
        raise ValidationError({"product": [ARCHIVED_PRODUCT]})
    _validated(price)
    price.save(update_fields=[*changed, "updated_at"])
    price_changed.send(sender=Price, price_id=price.pk, product_id=product.pk, created=False, fields=changed)
    return price


@transaction.atomic
def price_archive(*, price: Price) -> Price:
    """Withdraw a price from sale; sends `price_deleted`."""
    _lock_product(price.product_id)
    price = Price.objects.select_for_update().get(pk=price.pk)
    if not price.active:
        return price
    price.active = False
    price.save(update_fields=["active", "updated_at"])
    price_deleted.send(sender=Price, price_id=price.pk, product_id=price.product_id)
    return price
