"""Writing one object to Stripe: what each kind's push sends, with idempotency keys made of
(object, version, key generation, step) (a customer's or product's create leaves the version out), and Stripe's
answer kept as dj-stripe's copy (`djstripe_copies`)."""

import logging
from datetime import timedelta

import stripe
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from djstripe import models as djstripe_models

from apps.catalog.models import Price, Product
from apps.payments.gateway.client import StripeGateway, gateway
from apps.payments.gateway.errors import is_missing
from apps.payments.gateway.installation import APP_REF_KEY, is_ours, ref_search_query, stripe_refs
from apps.payments.mirror import djstripe_copies, leases, specs
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState, StripeWatermark
from apps.payments.mirror.outbox import enqueue
from apps.payments.mirror.outcomes import WAITING, Completion, MirrorRejected, Pushed, Waiting
from apps.users.models import User

log = logging.getLogger("apps.payments.mirror")


def _key(record: MirrorRecord, step: str) -> str:
    return f"{record.app_ref}:v{record.version}:g{record.key_generation}:{step}"


def _create_key(record: MirrorRecord) -> str:
    """One key for every attempt to make a customer or product, whatever changed between them. An attempt may
    make the object and still fail (Stripe answers 500 after the work, the worker dies): a retry under a key of
    the new version would make a second one, while under this key Stripe answers the first object, or refuses
    the changed request (a spent key: the next key searches for the object and adopts it). An object made again
    because the one we knew is gone (deleted in the dashboard) is another object, under a key of its own."""
    replacing = f":replacing:{record.stripe_id}" if record.stripe_id else ""
    return f"{record.app_ref}:g{record.key_generation}:create{replacing}"


def _metadata(record: MirrorRecord, current: dict) -> dict:
    """Stripe merges metadata: keys removed locally are sent empty to remove them there too."""
    removed = {key: "" for key in record.pushed.get("metadata_keys", []) if key not in current}
    return {**removed, **current}


# An object is made in the same transaction as its mirror row, but its own timestamp may be taken earlier (a new
# user's, before their password is hashed: seconds on a busy machine).
MADE_WITH_ITS_ROW = timedelta(minutes=1)


def _may_be_in_stripe_already(record: MirrorRecord, created_at) -> bool:
    """Worth a search before creating: a retry under a new key (Stripe forgot the old one, or refused it because
    the object changed since an attempt that may have made it), or an object older than its mirror row (made
    before the mirror tracked it, so perhaps put in Stripe another way). A brand-new object has no twin to find;
    its own retries are covered by its idempotency key."""
    return record.key_generation > 0 or created_at < record.created_at - MADE_WITH_ITS_ROW


def _search_by_ref(resource, app_ref: str, accept=lambda found: True):
    """The oldest object of ours Stripe holds for `app_ref` (and that `accept` takes), or None."""
    gw = gateway()
    found = gw.call(lambda options: resource.search(params={"query": ref_search_query(app_ref)}, options=options))
    candidates = [obj for obj in found.data if accept(obj)]
    return min(candidates, key=lambda obj: obj.created) if candidates else None


def _update_or_adopt(gw: StripeGateway, service, record: MirrorRecord, fields: dict, created_at):
    """Update the Stripe object we know, or adopt one found by `app_ref`; None when there is none yet."""
    if record.stripe_id:
        try:
            return gw.call(
                lambda options: service.update(record.stripe_id, params=fields, options=options),
                idempotency_key=_key(record, "update"),
            )
        except stripe.InvalidRequestError as error:
            if not is_missing(error):
                raise
            log.warning("mirror object gone in Stripe app_ref=%s stripe_id=%s", record.app_ref, record.stripe_id)
    if record.stripe_id or _may_be_in_stripe_already(record, created_at):
        existing = _search_by_ref(service, record.app_ref)
        if existing is not None:
            return gw.call(
                lambda options: service.update(existing.id, params=fields, options=options),
                idempotency_key=_key(record, "adopt"),
            )
    return None


def note_stripe_state(stripe_id: str, updated: int | None) -> None:
    """Remember the newest `updated` of a Stripe object we wrote, so its older echoes are recognised as stale:
    one statement, which never moves the watermark back."""
    if updated is None:
        return
    quote = connection.ops.quote_name
    table = quote(StripeWatermark._meta.db_table)
    larger = "GREATEST" if connection.vendor == "postgresql" else "MAX"  # `make run`'s SQLite says MAX
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (stripe_id, updated, deleted, seen_at) VALUES (%s, %s, false, %s) "  # noqa: S608
            f"ON CONFLICT (stripe_id) DO UPDATE SET "
            f"updated = {larger}(COALESCE({table}.updated, EXCLUDED.updated), EXCLUDED.updated), "
            "seen_at = EXCLUDED.seen_at",
            [stripe_id, updated, timezone.now()],
        )


# --- customers ---------------------------------------------------------------------------------------


def push_user(record: MirrorRecord, owner: str) -> Pushed:
    gw = gateway()
    user = User.objects.filter(pk=record.object_id).first()
    if record.deleted or user is None:
        return _delete_customer(gw, record)
    fields = {**specs.CUSTOMER.wanted(user), "metadata": stripe_refs(record.app_ref)}
    # One customer per user, ever: one made earlier (a crash, a payment link) is adopted.
    customer = _update_or_adopt(gw, gw.v1.customers, record, fields, user.date_joined) or gw.call(
        lambda options: gw.v1.customers.create(params=fields, options=options), idempotency_key=_create_key(record)
    )
    djstripe_copies.store(djstripe_models.Customer, customer)
    djstripe_models.Customer.objects.filter(id=customer.id).update(subscriber=user)
    return Pushed(customer.id)


def _delete_customer(gw: StripeGateway, record: MirrorRecord) -> Pushed:
    target = record.stripe_id or getattr(_search_by_ref(gw.v1.customers, record.app_ref), "id", "")
    if target:
        try:
            gw.call(lambda options: gw.v1.customers.delete(target, options=options))
        except stripe.InvalidRequestError as error:
            if not is_missing(error):
                raise
        djstripe_models.Customer.objects.filter(id=target).update(subscriber=None, date_purged=timezone.now())
    return Pushed(target)


# --- products ----------------------------------------------------------------------------------------


def push_product(record: MirrorRecord, owner: str) -> Pushed:
    gw = gateway()
    claimed = getattr(record, "claimed", None)  # its first price, leased with it to be made with it
    price = Price.objects.select_related("product").filter(pk=claimed.object_id).first() if claimed else None
    product = price.product if price else Product.objects.filter(pk=record.object_id).first()
    if product is None:
        _give_back(claimed, owner)
        raise MirrorRejected("the product no longer exists locally")
    wanted = specs.PRODUCT.wanted(product)
    metadata = _metadata(record, {**wanted["metadata"], **stripe_refs(record.app_ref)})
    fields = {**wanted, "metadata": metadata}
    pushed = {"metadata_keys": sorted(key for key, value in metadata.items() if value)}
    try:
        stripe_product = _update_or_adopt(gw, gw.v1.products, record, fields, product.created_at)
    except Exception:
        _give_back(claimed, owner)
        raise
    if stripe_product is None:
        return _create_product(gw, record, owner, product, fields, pushed, (claimed, price) if price else None)
    _give_back(claimed, owner)  # adopted, not made: the price goes on its own, released with the product
    djstripe_copies.store(djstripe_models.Product, stripe_product)
    note_stripe_state(stripe_product.id, stripe_product.updated)
    return Pushed(stripe_product.id, pushed)


def _give_back(claimed: MirrorRecord | None, owner: str) -> None:
    if claimed is not None:
        leases.finish(claimed.pk, owner)


def _price_params(price: Price, app_ref: str) -> dict:
    immutable = specs.price_immutable(price)
    params = {
        "currency": immutable["currency"],
        "unit_amount": immutable["unit_amount"],
        "metadata": stripe_refs(app_ref),
    }
    if immutable["interval"]:
        params["recurring"] = {"interval": immutable["interval"], "interval_count": immutable["interval_count"]}
    return params


def _create_product(gw, record, owner, product, fields, pushed, claimed) -> Pushed:
    """One `POST /v1/products`, carrying the product's first price as `default_price_data` when it was claimed
    with the product; then all Stripe answered recorded in one transaction."""
    params = {**fields, "expand": ["default_price"]}
    if not params["description"]:
        del params["description"]  # Stripe refuses an empty description on create
    if claimed is not None:
        price_record, price = claimed
        params["default_price_data"] = _price_params(price, price_record.app_ref)
    try:
        stripe_product = gw.call(
            lambda options: gw.v1.products.create(params=params, options=options),
            idempotency_key=_create_key(record),
        )
    except Exception as error:
        # The claimed price goes back; a retry of this task claims it again and replays the same create.
        if claimed is not None:
            leases.finish(claimed[0].pk, owner, error=error)
        raise
    product_pushed = Pushed(stripe_product.id, pushed)
    price_pushed = (
        Pushed(stripe_product.default_price.id, {"immutable": specs.price_immutable(claimed[1])}) if claimed else None
    )
    try:
        with transaction.atomic():
            completions = _record_creation(owner, record, stripe_product, product_pushed, claimed, price_pushed)
    except IntegrityError:
        # Stripe's product or price mirrors another row already: recorded one by one, the conflict named.
        completions = _record_creation(
            owner, record, stripe_product, product_pushed, claimed, price_pushed, together=False
        )
    if claimed is not None and completions[claimed[0].pk] == Completion.AGAIN:
        # The price changed while its product was created: its own task takes over.
        leases.finish(claimed[0].pk, owner)
        enqueue(claimed[0].pk)
    return Pushed(stripe_product.id, pushed, recorded=completions[record.pk])


def _record_creation(owner, record, stripe_product, product_pushed, claimed, price_pushed, *, together=True) -> dict:
    """dj-stripe's copies, the watermark and both rows' completions: what Stripe answered, kept at once (or, with
    `together` False, each row completed on its own, so that a conflict is named for the row it is about)."""
    djstripe_copies.store(djstripe_models.Product, stripe_product)
    note_stripe_state(stripe_product.id, stripe_product.updated)
    pushes = [(record, record.version, product_pushed)]
    if claimed is not None:
        djstripe_copies.store(djstripe_models.Price, stripe_product.default_price, product_stored=True)
        pushes.insert(0, (claimed[0], claimed[0].version, price_pushed))
    if together:
        return leases.complete_together(owner, pushes)
    return {row.pk: leases.complete(row.pk, owner, version, pushed) for row, version, pushed in pushes}


# --- prices ------------------------------------------------------------------------------------------


def push_price(record: MirrorRecord, owner: str) -> Pushed | Waiting:
    gw = gateway()
    price = Price.objects.filter(pk=record.object_id).first()
    if price is None:
        raise MirrorRejected("the price no longer exists locally")
    product_record = MirrorRecord.objects.filter(kind=MirrorKind.PRODUCT, object_id=price.product_id).first()
    if product_record is None or not product_record.stripe_id:
        if product_record is not None and product_record.state == MirrorState.FAILED:
            raise MirrorRejected(f"its product could not be mirrored: {product_record.last_error}")
        return WAITING
    metadata = stripe_refs(record.app_ref)
    wanted = specs.price_immutable(price)
    if record.stripe_id and record.pushed.get("immutable") == wanted:
        stripe_price = gw.call(
            lambda options: gw.v1.prices.update(
                record.stripe_id, params={"active": price.active, "metadata": metadata}, options=options
            ),
            idempotency_key=_key(record, "update"),
        )
    else:
        stripe_price = _replace_price(gw, record, price, product_record.stripe_id)
    djstripe_copies.store(djstripe_models.Price, stripe_price)
    return Pushed(stripe_price.id, {"immutable": wanted})


def _replace_price(gw, record: MirrorRecord, price: Price, stripe_product_id: str):
    """Amount, currency and recurrence never change in Stripe: a new Price, made the default in the old one's place."""
    old_id = record.stripe_id
    stripe_price = None
    # A price made with its product, or by an attempt that failed, may be in Stripe under a key of another
    # version: searched for after a first attempt too.
    if not old_id and (_may_be_in_stripe_already(record, price.created_at) or record.attempts > 1):
        # Only one that charges what the catalog says now: an earlier attempt may have made one of an older amount.
        wanted = specs.price_immutable(price)
        stripe_price = _search_by_ref(
            gw.v1.prices, record.app_ref, accept=lambda found: specs.stripe_price_immutable(found) == wanted
        )
    if stripe_price is None:
        params = {**_price_params(price, record.app_ref), "product": stripe_product_id, "active": price.active}
        stripe_price = gw.call(
            lambda options: gw.v1.prices.create(params=params, options=options), idempotency_key=_key(record, "create")
        )
    current_default = (
        djstripe_models.Product.objects.filter(id=stripe_product_id)
        .values_list("stripe_data__default_price", flat=True)
        .first()
    )
    if isinstance(current_default, dict):  # stored expanded when the product was created with its price
        current_default = current_default["id"]
    replaced = _previous_live_prices(gw, record, stripe_product_id, old_id, keep=stripe_price.id)
    # The default moves to the new price when it was one of those it replaces (Stripe refuses to archive a
    # product's default price), or when the product had none.
    if price.active and (current_default in replaced or not current_default):
        stripe_product = gw.call(
            lambda options: gw.v1.products.update(
                stripe_product_id, params={"default_price": stripe_price.id}, options=options
            ),
            idempotency_key=_key(record, "default"),
        )
        djstripe_copies.store(djstripe_models.Product, stripe_product)
        note_stripe_state(stripe_product.id, stripe_product.updated)
    for previous in replaced:
        archived = gw.call(
            lambda options, previous=previous: gw.v1.prices.update(previous, params={"active": False}, options=options),
            idempotency_key=_key(record, f"archive-previous:{previous}"),
        )
        djstripe_copies.store(djstripe_models.Price, archived)
    return stripe_price


def _previous_live_prices(gw, record: MirrorRecord, stripe_product_id: str, old_id: str, keep: str) -> list[str]:
    """The Stripe prices this one replaces: the one the row names, and, after an attempt that may have reached
    Stripe (a worker killed between making a price and recording it), any other live price of ours for the
    same local price, which the row never learnt of."""
    previous = {old_id} if old_id else set()
    if record.attempts > 1:
        listed = gw.call(
            lambda options: gw.v1.prices.list(
                params={"product": stripe_product_id, "active": True, "limit": 100}, options=options
            )
        )
        previous |= {
            obj.id
            for obj in listed.auto_paging_iter()
            if is_ours(obj.metadata) and obj.metadata.get(APP_REF_KEY) == record.app_ref
        }
    return sorted(previous - {keep})


PUSHERS = {MirrorKind.USER: push_user, MirrorKind.PRODUCT: push_product, MirrorKind.PRICE: push_price}
