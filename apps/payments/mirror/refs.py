"""Which Stripe object mirrors a local one, read from the mirror's rows, and what a caller does when it needs
one that is not in Stripe yet.

`stripe_id_of` and `catalog_refs` only read. `ensure_in_stripe` and `ensure_price_in_stripe` are for a
payment that must name a Stripe object (a customer, a product, a price as the catalog has it now): what the
mirror has not brought yet is pushed at once, with one Stripe call inside a web request, or the caller is
told to come back (`NotInStripe`, a 503 with `Retry-After`) while a worker brings it. Nothing waits here.
"""

import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import redis
from django.conf import settings

from apps.catalog.models import Price, Product
from apps.payments.gateway.errors import StripeKeySpent, StripeUnavailable
from apps.payments.gateway.policies import RETRY_AFTER_SECONDS, calls_at_most, in_web_request
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.mirror.outbox import MIRROR_SYNC_TASK, mirror_record_change
from apps.payments.mirror.specs import price_immutable
from apps.payments.mirror.sync import mirror_sync
from config.errors import Conflict, Unavailable
from config.task_base import queue_task_on_commit

log = logging.getLogger("apps.payments.mirror")


class NotInStripe(Unavailable):
    """An object a payment needs is not in Stripe yet (a worker is bringing it); nothing was charged."""

    public_detail = "The payment provider cannot be reached; nothing was charged."


class PriceNotInStripe(Conflict):
    """Stripe refused the price as the catalog has it now (its mirror failed): an operator must look."""


def stripe_id_of(kind: str, object_id: int) -> str | None:
    """The Stripe object that mirrors a local one now (a price's changes make new ones); None before any."""
    found = MirrorRecord.objects.filter(kind=kind, object_id=object_id).exclude(stripe_id="")
    return found.values_list("stripe_id", flat=True).first()


@dataclass(frozen=True)
class CatalogRefs:
    """Which catalog rows Stripe's ids stand for: `price`/`product` by Stripe id, product names by our id."""

    prices: dict[str, int]
    products: dict[str, int]
    product_names: dict[int, str]


def catalog_refs(stripe_ids: set[str]) -> CatalogRefs:
    rows = MirrorRecord.objects.filter(stripe_id__in=stripe_ids, kind__in=(MirrorKind.PRICE, MirrorKind.PRODUCT))
    prices, products = {}, {}
    for kind, stripe_id, object_id in rows.values_list("kind", "stripe_id", "object_id"):
        (prices if kind == MirrorKind.PRICE else products)[stripe_id] = object_id
    names = dict(Product.objects.filter(pk__in=products.values()).values_list("pk", "name"))
    return CatalogRefs(prices=prices, products=products, product_names=names)


def _in_stripe_now(kind: str, object_id: int, is_current: Callable[[MirrorRecord], bool]) -> MirrorRecord:
    """The object's mirror row once Stripe holds it as `is_current` wants, pushing it now if need be: once, with
    at most one Stripe call in a web request, and never waiting for a worker that is pushing it already.
    Otherwise `NotInStripe`, with when to try again; a worker brings it meanwhile."""
    if not settings.STRIPE_MIRROR_ENABLED:
        raise NotInStripe(
            "Stripe is not configured here (no STRIPE_SECRET_KEY, or STRIPE_MIRROR_ENABLED off).", retry_after=60
        )
    record = MirrorRecord.objects.filter(kind=kind, object_id=object_id).first()
    if record is not None and is_current(record):
        return record
    # A version Stripe does not hold yet (new, failed, or pushed as it no longer is): ours to push.
    bumped = record is None or record.state == MirrorState.FAILED or record.synced_version >= record.version
    if bumped:
        mirror_record_change(kind=kind, object_id=object_id, queue=False)
    record = MirrorRecord.objects.get(kind=kind, object_id=object_id)
    try:
        with calls_at_most(1) if in_web_request() else nullcontext():
            mirror_sync(record_id=record.pk)  # nothing to do while a live worker holds the lease: it is pushing
    except (StripeUnavailable, StripeKeySpent, redis.RedisError) as error:
        # Redis keeps the pushers' heartbeats: without it nothing is pushed here, and the answer is "come back".
        log.info("mirror push in a request did not finish app_ref=%s error=%s", record.app_ref, error)
    record.refresh_from_db()
    if is_current(record):
        return record
    if bumped:  # the version this request made goes to a worker, which waits and retries as need be
        queue_task_on_commit(MIRROR_SYNC_TASK, record.pk, countdown=RETRY_AFTER_SECONDS)
    raise NotInStripe(
        f"{record.app_ref} is not in Stripe yet ({record.state}): {record.last_error or 'a worker is pushing it'}",
        retry_after=RETRY_AFTER_SECONDS,
    )


def ensure_in_stripe(kind: str, object_id: int) -> str:
    """The Stripe id of a local object a payment names (a customer, a product), pushed now if need be."""
    return _in_stripe_now(kind, object_id, is_current=lambda record: bool(record.stripe_id)).stripe_id


def ensure_price_in_stripe(price: Price) -> str:
    """The Stripe price that charges what the catalog says now (amount, currency, recurrence)."""
    wanted = price_immutable(price)

    def holds_current_amount(record: MirrorRecord) -> bool:
        return bool(record.stripe_id) and record.pushed.get("immutable") == wanted

    ensure_in_stripe(MirrorKind.PRODUCT, price.product_id)  # a price needs its product, which may carry it
    try:
        return _in_stripe_now(MirrorKind.PRICE, price.pk, holds_current_amount).stripe_id
    except NotInStripe as error:
        record = MirrorRecord.objects.get(kind=MirrorKind.PRICE, object_id=price.pk)
        if record.state != MirrorState.FAILED:
            raise
        raise PriceNotInStripe(
            f"Stripe does not hold the current price of {price.product.name} ({price.unit_amount} "
            f"{price.currency}): {record.last_error}"
        ) from error
