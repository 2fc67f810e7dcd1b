"""Stripe events about the catalog and customers: dashboard edits of products and prices come back into
the catalog; a customer's link to its user is kept. Idempotent (a second delivery changes nothing) and
order-safe.

Stripe sends events in no particular order and `event.created` must not order them.
An object with an `updated` timestamp (products) is compared with the watermark we
keep for it: older is stale, newer is applied, equal is in doubt. An object without
one (prices, customers) is in doubt whenever the event differs from what we hold.
In doubt, the object is fetched from Stripe once and what Stripe holds now is applied.

Local writes are the truth: while a local change is on its way to Stripe, Stripe's
older state is not applied over it. A change that came from Stripe is applied inside
`changes_from_stripe()`, so the mirror counts it as synced and sends nothing back.
What each kind should hold is the mirror's spec (`mirror.specs`), read here the other way.
"""

from contextlib import nullcontext

import stripe
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from djstripe import models as djstripe_models

from apps.catalog import services as catalog
from apps.catalog.models import Price, Product
from apps.payments.gateway.client import gateway
from apps.payments.gateway.errors import is_missing
from apps.payments.gateway.installation import APP_REF_KEY, foreign_ref, is_ours
from apps.payments.mirror import djstripe_copies, specs
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState, StripeWatermark
from apps.payments.mirror.outbox import changes_from_stripe, mirror_record_change
from apps.payments.mirror.outcomes import CatalogOutcome
from config.outcomes import Outcome


def _watermark(stripe_id: str) -> StripeWatermark:
    """The object's watermark, locked: events about one object are applied one at a time, in any order."""
    watermark = StripeWatermark.objects.select_for_update().filter(pk=stripe_id).first()
    if watermark is None:  # the object's first event here
        StripeWatermark.objects.bulk_create([StripeWatermark(stripe_id=stripe_id)], ignore_conflicts=True)
        watermark = StripeWatermark.objects.select_for_update().get(pk=stripe_id)
    return watermark


def _mirrored_product_held(stripe_id: str) -> tuple[StripeWatermark, MirrorRecord, Product] | None:
    """For a product mirrored here (what most events are about: a dashboard edit, our own write's echo), its
    watermark and local product locked, with its mirror row, in one round trip; None for any other. The locks
    come in the order every writer takes them (the watermark, then the product; the mirror row after)."""
    if connection.vendor != "postgresql":  # `make run`'s SQLite takes the longer way
        return None
    quote = connection.ops.quote_name
    watermarks, records = quote(StripeWatermark._meta.db_table), quote(MirrorRecord._meta.db_table)
    products = quote(Product._meta.db_table)
    # Table names come from the models; values are parameters.
    found = Product.objects.raw(
        f"SELECT p.*, w.updated AS watermark_updated, w.deleted AS watermark_deleted, m.id AS record_id, "  # noqa: S608
        f"m.state AS record_state, m.version AS record_version, m.synced_version AS record_synced_version "
        f"FROM {watermarks} w JOIN {records} m ON m.kind = %s AND m.stripe_id = w.stripe_id "
        f"JOIN {products} p ON p.id = m.object_id WHERE w.stripe_id = %s FOR UPDATE OF w, p",
        [MirrorKind.PRODUCT, stripe_id],
    )
    product = next(iter(found), None)
    if product is None:
        return None
    watermark = StripeWatermark(
        stripe_id=stripe_id, updated=product.watermark_updated, deleted=product.watermark_deleted
    )
    watermark._state.adding = False
    record = MirrorRecord(
        pk=product.record_id,
        kind=MirrorKind.PRODUCT,
        object_id=product.pk,
        stripe_id=stripe_id,
        state=product.record_state,
        version=product.record_version,
        synced_version=product.record_synced_version,
    )
    record._state.adding = False
    return watermark, record, product


def _mark_deleted(watermark: StripeWatermark) -> None:
    """Stripe never brings a deleted object back: every later event about it is stale."""
    watermark.deleted = True
    watermark.save(update_fields=["deleted"])


def _fetch(resource: str, stripe_id: str) -> dict | None:
    """What Stripe holds now (None if the object is gone), through the mirror's rate-limited client."""
    gw = gateway()
    try:
        return gw.call(lambda options: getattr(gw.v1, resource).retrieve(stripe_id, options=options)).to_dict()
    except stripe.InvalidRequestError as error:
        if is_missing(error):
            return None
        raise


def _record_for(kind: str, obj: dict) -> MirrorRecord | None:
    """The mirror row of the local object this Stripe object stands for: by Stripe id, else by an
    `app_ref` written by this installation (another's `catalog.product:7` is not our product 7)."""
    record = MirrorRecord.objects.filter(kind=kind, stripe_id=obj["id"]).first()
    if record is not None or not is_ours(obj.get("metadata")):
        return record
    kind_ref, _, object_id = (obj.get("metadata") or {}).get(APP_REF_KEY, "").partition(":")
    if kind_ref == kind and object_id.isdigit():
        return MirrorRecord.objects.filter(kind=kind, object_id=int(object_id)).first()
    return None


def _of_another_installation(obj: dict, record: MirrorRecord | None) -> bool:
    """Not linked here, and marked as the mirror of another database's row: none of our business."""
    return record is None and foreign_ref(obj.get("metadata"))


def _local_change_pending(record: MirrorRecord | None) -> bool:
    return record is not None and record.version > record.synced_version and record.state == MirrorState.PENDING


def _superseded(record: MirrorRecord | None, obj: dict) -> bool:
    """Another Stripe object mirrors this local one now (an earlier price, a duplicate)."""
    return record is not None and bool(record.stripe_id) and record.stripe_id != obj["id"]


def _not_ours_to_apply(record: MirrorRecord | None, obj: dict, *, superseded: Outcome) -> Outcome | None:
    """Why an event about a catalog object changes nothing here, if it does not: the object is another
    installation's, another Stripe object stands for the local one now, or a local change is on its way."""
    if _of_another_installation(obj, record):
        return CatalogOutcome.OTHER_INSTALLATION.of()
    if _superseded(record, obj):
        return superseded
    if _local_change_pending(record):
        return CatalogOutcome.LOCAL_CHANGE_PENDING.of()
    return None


def _adopt(kind: str, object_id: int, stripe_id: str, pushed: dict | None = None) -> None:
    """Link a local object made from a Stripe one; the mirror then writes its `app_ref` into Stripe."""
    MirrorRecord.objects.filter(kind=kind, object_id=object_id).update(stripe_id=stripe_id, pushed=pushed or {})


# --- products -----------------------------------------------------------------------------------------


def on_product(event: dict) -> Outcome:
    obj = event["data"]["object"]
    held = _mirrored_product_held(obj["id"])
    if held is not None:
        watermark, record, product = held
    else:
        watermark, record, product = _watermark(obj["id"]), _record_for(MirrorKind.PRODUCT, obj), None
    if watermark.deleted:
        return CatalogOutcome.PRODUCT_DELETED.of()
    if event["type"] == "product.deleted":
        _mark_deleted(watermark)
        return _archive_product(obj)
    if watermark.updated is not None and obj["updated"] < watermark.updated:
        return CatalogOutcome.PRODUCT_STALE.of()
    superseded = CatalogOutcome.PRODUCT_SUPERSEDED.of()
    reason = _not_ours_to_apply(record, obj, superseded=superseded)
    ours_on_its_way = reason == CatalogOutcome.LOCAL_CHANGE_PENDING.of() and _only_our_ref_on_its_way(record, product)
    if reason is not None and not ours_on_its_way:
        return reason
    if watermark.updated is not None and obj["updated"] == watermark.updated:
        local = product or (Product.objects.filter(pk=record.object_id).first() if record else None)
        if local is not None and specs.PRODUCT.matches(local, obj):
            return CatalogOutcome.UNCHANGED.of()
        # Two changes within one second: only Stripe knows which is last (read before this transaction).
        obj = _fetch("products", obj["id"])
        if obj is None:
            return _archive_product(event["data"]["object"])
    outcome = _apply_product(obj, record, product, from_stripe=not ours_on_its_way)
    watermark.updated = max(obj["updated"], watermark.updated or 0)
    watermark.save(update_fields=["updated"])
    return outcome


def _only_our_ref_on_its_way(record: MirrorRecord, product: Product | None) -> bool:
    """The local change on its way is only our `app_ref` for a product made from Stripe's: the product still
    holds what Stripe said last (dj-stripe's copy), so a newer Stripe state loses nothing edited here."""
    local = product or Product.objects.filter(pk=record.object_id).first()
    copy = djstripe_models.Product.objects.filter(id=record.stripe_id).values_list("stripe_data", flat=True).first()
    return local is not None and copy is not None and specs.PRODUCT.matches(local, copy)


def _apply_product(
    obj: dict, record: MirrorRecord | None, locked: Product | None = None, *, from_stripe: bool = True
) -> Outcome:
    """Stripe's product into the catalog: made if it has no local product, else updated (`locked`: the local
    product as this transaction read and locked it). `from_stripe` False: applied as a local change, so the
    push already on its way carries it (with our `app_ref`) instead of writing the older state back."""
    product = locked or (Product.objects.filter(pk=record.object_id).first() if record else None)
    djstripe_copies.store(djstripe_models.Product, obj)
    try:
        if product is None:
            with changes_from_stripe():
                product = catalog.product_create(**specs.PRODUCT.held(obj))
            _adopt(MirrorKind.PRODUCT, product.pk, obj["id"])
            _push_app_ref(MirrorKind.PRODUCT, product.pk)
            return CatalogOutcome.PRODUCT_CREATED.of(product=product.pk)
        with changes_from_stripe() if from_stripe else nullcontext():
            before = product.updated_at
            product = catalog.product_update(product=product, data=specs.PRODUCT.held(obj), locked=locked is not None)
        updated = product.updated_at != before
        return (CatalogOutcome.PRODUCT_UPDATED if updated else CatalogOutcome.UNCHANGED).of()
    except ValidationError as error:
        return CatalogOutcome.CATALOG_REFUSES.of(messages=error.messages)


def _archive_product(obj: dict) -> Outcome:
    record = _record_for(MirrorKind.PRODUCT, obj)
    product = Product.objects.filter(pk=record.object_id).first() if record else None
    if product is None or not product.active:
        return CatalogOutcome.NO_ACTIVE_PRODUCT.of()
    with changes_from_stripe():
        catalog.product_archive(product=product)
    return CatalogOutcome.PRODUCT_ARCHIVED.of()


def _push_app_ref(kind: str, object_id: int) -> None:
    """A dashboard-made object gets our `app_ref` in Stripe: one mirror write, after this transaction."""
    mirror_record_change(kind=kind, object_id=object_id)


# --- prices -----------------------------------------------------------------------------------------------


def on_price(event: dict) -> Outcome:
    obj = event["data"]["object"]
    watermark = _watermark(obj["id"])
    if watermark.deleted:
        return CatalogOutcome.PRICE_DELETED.of()
    record = _record_for(MirrorKind.PRICE, obj)
    superseded = CatalogOutcome.PRICE_SUPERSEDED.of()
    if reason := _not_ours_to_apply(record, obj, superseded=superseded):
        return reason
    price = Price.objects.filter(pk=record.object_id).first() if record else None
    if event["type"] == "price.deleted":
        _mark_deleted(watermark)
        return _archive_price(price)
    if price is not None and _catalog_holds(price, obj) and _djstripe_copy_holds(obj):
        return CatalogOutcome.UNCHANGED.of()
    # Prices carry no `updated`: an event that differs from what we hold (the catalog, or dj-stripe's copy of a
    # nickname or metadata edited in the dashboard) may be old. Ask Stripe.
    current = _fetch("prices", obj["id"])
    if current is None:
        _mark_deleted(watermark)
        return _archive_price(price)
    if price is None:
        return _create_price(current)
    djstripe_copies.store(djstripe_models.Price, current)
    if _catalog_holds(price, current):
        return CatalogOutcome.STRIPE_HOLDS_OURS.of()
    with changes_from_stripe():
        if current["active"]:
            catalog.price_update(price=price, data={"active": True})
        else:
            catalog.price_archive(price=price)
    return (CatalogOutcome.PRICE_REACTIVATED if current["active"] else CatalogOutcome.PRICE_ARCHIVED).of()


def _catalog_holds(price: Price, obj: dict) -> bool:
    """The catalog holds what this Stripe price says of what may change in Stripe: whether it is on sale (its
    amount, currency and interval never change; another amount is another Stripe price)."""
    return specs.PRICE.wanted(price)["active"] == specs.PRICE.held(obj)["active"]


# What the dashboard may change on a price that the catalog does not keep, but dj-stripe's admin shows.
DJSTRIPE_ONLY_PRICE_FIELDS = ("nickname", "metadata", "lookup_key", "tax_behavior")


def _djstripe_copy_holds(obj: dict) -> bool:
    """dj-stripe's copy of this price already holds what the event says (or there is no copy to keep)."""
    copy = djstripe_models.Price.objects.filter(id=obj["id"]).values_list("stripe_data", flat=True).first()
    if copy is None:
        return True  # no copy is made here: it comes with its product's (`djstripe_copies.store`)
    return all((copy.get(name) or None) == (obj.get(name) or None) for name in DJSTRIPE_ONLY_PRICE_FIELDS)


def _create_price(obj: dict) -> Outcome:
    if obj.get("unit_amount") is None or obj.get("billing_scheme") != "per_unit":
        return CatalogOutcome.PRICE_NOT_PER_UNIT.of()
    product_record = MirrorRecord.objects.filter(kind=MirrorKind.PRODUCT, stripe_id=obj["product"]).first()
    if product_record is None:
        stripe_product = _fetch("products", obj["product"])
        if stripe_product is None:
            return CatalogOutcome.PRICE_PRODUCT_GONE.of()
        if foreign_ref(stripe_product.get("metadata")):
            return CatalogOutcome.PRICE_PRODUCT_OTHER_INSTALLATION.of()
        _apply_product(stripe_product, None)
        product_record = MirrorRecord.objects.filter(kind=MirrorKind.PRODUCT, stripe_id=obj["product"]).first()
    product = Product.objects.filter(pk=product_record.object_id).first() if product_record else None
    if product is None:
        return CatalogOutcome.PRICE_PRODUCT_NOT_MADE.of()
    try:
        with changes_from_stripe():
            held = specs.PRICE.held(obj)
            price = catalog.price_create(
                product=product,
                unit_amount=held["unit_amount"],
                currency=held["currency"],
                recurring_interval=held["interval"],
                recurring_interval_count=held["interval_count"] or 1,
                active=held["active"] and product.active,
            )
    except ValidationError as error:
        return CatalogOutcome.CATALOG_REFUSES.of(messages=error.messages)
    _adopt(MirrorKind.PRICE, price.pk, obj["id"], {"immutable": specs.price_immutable(price)})
    djstripe_copies.store(djstripe_models.Price, obj)
    _push_app_ref(MirrorKind.PRICE, price.pk)
    return CatalogOutcome.PRICE_CREATED.of(price=price.pk)


def _archive_price(price: Price | None) -> Outcome:
    if price is None or not price.active:
        return CatalogOutcome.NO_ACTIVE_PRICE.of()
    with changes_from_stripe():
        catalog.price_archive(price=price)
    return CatalogOutcome.PRICE_ARCHIVED.of()


# --- customers ------------------------------------------------------------------------------------------


def on_customer_updated(event: dict) -> Outcome:
    obj = event["data"]["object"]
    record = _record_for(MirrorKind.USER, obj)
    if _of_another_installation(obj, record):
        return CatalogOutcome.OTHER_INSTALLATION.of()
    if record is None:
        return CatalogOutcome.NO_USER.of()
    if record.deleted:
        return CatalogOutcome.USER_DELETED.of()
    if _superseded(record, obj):
        return CatalogOutcome.USER_HAS_ANOTHER_CUSTOMER.of()
    customer = djstripe_models.Customer.sync_from_stripe_data(obj)
    linked = not record.stripe_id
    if linked:
        MirrorRecord.objects.filter(pk=record.pk).update(stripe_id=obj["id"])
    djstripe_models.Customer.objects.filter(pk=customer.pk).update(subscriber_id=record.object_id)
    return (CatalogOutcome.CUSTOMER_LINKED if linked else CatalogOutcome.CUSTOMER_ALREADY_LINKED).of()


def on_customer_deleted(event: dict) -> Outcome:
    obj = event["data"]["object"]
    watermark = _watermark(obj["id"])
    _mark_deleted(watermark)
    djstripe_models.Customer.objects.filter(id=obj["id"]).update(subscriber=None, date_purged=timezone.now())
    unlinked = MirrorRecord.objects.filter(kind=MirrorKind.USER, stripe_id=obj["id"]).update(stripe_id="")
    # A user who still exists gets a new customer the next time the mirror runs for them.
    return (CatalogOutcome.CUSTOMER_UNLINKED if unlinked else CatalogOutcome.NO_USER_HAD_CUSTOMER).of()
