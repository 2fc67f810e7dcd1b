"""dj-stripe's own copies of the customers, products and prices we write or hear about (its admin shows them),
kept from what Stripe answered or told us, in one or two statements each.

dj-stripe's `sync_from_stripe_data` does much more per object: it looks up the owner account and API key,
re-reads every related object, and for a product asks Stripe for its features (`GET
/v1/products/{id}/features`, outside the rate budget). The mirror already holds Stripe's answer; nothing more
is needed for the copy, and the mirror's cost per object is what bounds its throughput.
"""

import json
import logging
from datetime import UTC, datetime

from djstripe import models as djstripe_models

log = logging.getLogger("apps.payments.mirror")


def _plain(obj) -> dict:
    """A Stripe object as JSON would hold it: the SDK's objects are not dicts, and carry Decimals
    (`unit_amount_decimal`); an event's object is a dict already."""
    if hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    return json.loads(json.dumps(obj, default=str))


def _columns(model, data: dict) -> dict:
    """The columns dj-stripe keeps beside `stripe_data` for this kind, as Stripe's object gives them."""
    columns = {"stripe_data": data, "metadata": data.get("metadata") or {}}
    if model is djstripe_models.Product:
        columns.update(name=data["name"], active=data["active"])
    elif model is djstripe_models.Price:
        columns.update(
            active=data["active"],
            currency=data["currency"],
            nickname=data.get("nickname") or "",
            lookup_key=data.get("lookup_key"),
        )
    elif model is djstripe_models.Customer:
        columns.update(email=data.get("email") or "")
    return columns


def store(model, obj, *, product_stored: bool = False) -> None:
    """Write dj-stripe's copy of `obj` (a product, price or customer), made or updated in one statement.
    `product_stored`: the caller wrote the price's product copy in this transaction (no need to look)."""
    data = _plain(obj)
    columns = _columns(model, data)
    unknown_product = (
        model is djstripe_models.Price
        and not product_stored
        and not djstripe_models.Product.objects.filter(id=data["product"]).exists()
    )
    if unknown_product:
        # A price is copied once its product's copy exists (the mirror copies the product first); one whose
        # product was never copied is left out rather than written without the product dj-stripe requires.
        log.info("dj-stripe copy of price %s skipped: no copy of its product %s", data["id"], data["product"])
        return
    extra = {"product_id": data["product"]} if model is djstripe_models.Price else {}
    created = datetime.fromtimestamp(data["created"], tz=UTC) if data.get("created") else None
    copy = model(id=data["id"], livemode=data.get("livemode"), created=created, **columns, **extra)
    # Made, or (written by another task a moment ago, or before) brought to this answer.
    model.objects.bulk_create(
        [copy], update_conflicts=True, unique_fields=["id"], update_fields=[*columns, "djstripe_updated"]
    )
