"""The mirror: local users, products and prices reach Stripe exactly once, in order.

Receivers call `mirror_record_change` inside the write's transaction: the object's
mirror row gets a new version and a task is queued on commit. The task calls
`mirror_sync`, which takes a lease on the row (one pusher per object at a time),
reads the object as it is now, writes it to Stripe with an idempotency key made of
(object, version, key generation, step), stores Stripe's answer through dj-stripe,
and loops while newer versions arrived meanwhile. A task that runs twice, late or
out of order finds the version already pushed and does nothing; a worker killed in
the middle of a call leaves a key that Stripe replays to its redelivered task.
"""

import logging
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone
from djstripe import models as djstripe_models

from apps.catalog.models import Price, Product
from apps.payments.installation import ref_search_query, stripe_refs
from apps.payments.models import MirrorKind, MirrorRecord, MirrorState, StripeWatermark
from apps.payments.stripe_client import PERMANENT, StripeGateway, StripeUnavailable, classify, gateway
from apps.users.models import User

log = logging.getLogger("apps.payments.mirror")

# Stripe forgets idempotency keys after 24 hours; a retry later than this searches first.
LATE_RETRY = timedelta(hours=23)


def _lease_length() -> timedelta:
    # Longer than a task may live (its hard time limit), so a lease never outlives its holder's request.
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 30)


# --- recording changes (receivers, inside the write's transaction) ------------------------------


# Set while a change that came from Stripe (a webhook) is applied locally: Stripe holds it already,
# so the new version counts as synced and nothing is sent back (no echo, no loop).
_from_stripe: ContextVar[bool] = ContextVar("changes_from_stripe", default=False)


@contextmanager
def changes_from_stripe():
    token = _from_stripe.set(True)
    try:
        yield
    finally:
        _from_stripe.reset(token)


def mirror_record_change(*, kind: str, object_id: int, deleted: bool = False, queue: bool = True) -> None:
    """Note that the object changed and (with `queue`) queue its mirroring once the transaction commits."""
    if not settings.STRIPE_MIRROR_ENABLED:
        return
    now = timezone.now()
    from_stripe = _from_stripe.get()
    changes = {
        "version": F("version") + 1,
        "state": MirrorState.PENDING,
        "pending_since": Case(
            When(state=MirrorState.PENDING, pending_since__isnull=False, then=F("pending_since")), default=Value(now)
        ),
        "updated_at": now,
    }
    if from_stripe:
        changes.update(synced_version=F("version") + 1, state=MirrorState.SYNCED, pending_since=None, synced_at=now)
    if deleted:
        changes["deleted"] = True
    rows = MirrorRecord.objects.filter(kind=kind, object_id=object_id)
    existed = bool(rows.update(**changes))
    if not existed:
        try:
            with transaction.atomic():
                MirrorRecord.objects.create(
                    kind=kind,
                    object_id=object_id,
                    deleted=deleted,
                    pending_since=None if from_stripe else now,
                    synced_version=1 if from_stripe else 0,
                    state=MirrorState.SYNCED if from_stripe else MirrorState.PENDING,
                )
        except IntegrityError:  # created by a concurrent write a moment ago
            rows.update(**changes)
    if from_stripe or not queue or (kind == MirrorKind.PRICE and _product_on_its_way(object_id)):
        return
    record_id = rows.values_list("pk", flat=True).get()
    # A change waits a moment so that quick successive edits leave as one update; a creation goes at once.
    delay = settings.MIRROR_COALESCE_SECONDS if existed else 0
    # robust: a broker that is down must not fail the write; beat queues the row later.
    transaction.on_commit(lambda: enqueue(record_id, delay=delay), robust=True)


def _product_on_its_way(price_id: int) -> bool:
    """The price's product is being created in Stripe: its task carries the price along or queues it after."""
    product_id = Price.objects.filter(pk=price_id).values_list("product_id", flat=True).first()
    return MirrorRecord.objects.filter(
        kind=MirrorKind.PRODUCT, object_id=product_id, state=MirrorState.PENDING, stripe_id=""
    ).exists()


def enqueue(record_id: int, delay: float = 0) -> None:
    from apps.payments.tasks import mirror_sync_task  # tasks import this module

    mirror_sync_task.apply_async((record_id,), countdown=delay or None)


def mirror_again(*, record: MirrorRecord, queue: bool = True) -> None:
    """An operator's retry: a new version, so Stripe does not replay the failure it remembers."""
    with transaction.atomic():
        mirror_record_change(kind=record.kind, object_id=record.object_id, deleted=record.deleted, queue=queue)


def requeue_stale(*, older_than: timedelta) -> int:
    """Queue rows left pending (a lost message, a broker down at commit, a killed worker's lease)."""
    now = timezone.now()
    stale = MirrorRecord.objects.filter(state=MirrorState.PENDING, pending_since__lt=now - older_than).exclude(
        lease_until__gt=now
    )
    ids = list(stale.values_list("pk", flat=True)[:1000])
    for record_id in ids:
        enqueue(record_id)
    return len(ids)


def mirror_give_up(*, record_id: int, message: str) -> None:
    MirrorRecord.objects.filter(pk=record_id).update(
        state=MirrorState.FAILED, last_error=message, lease_owner="", lease_until=None, updated_at=timezone.now()
    )


# --- syncing (tasks and commands) -----------------------------------------------------------------


@dataclass
class Pushed:
    """What Stripe holds after a push."""

    stripe_id: str
    pushed: dict = field(default_factory=dict)


WAITING = "waiting"  # the object cannot go yet (its product is not in Stripe); another task will bring it


class MirrorRejected(Exception):
    """Stripe refused the object for good (an `invalid_request_error`); the row is marked failed."""


def mirror_sync(*, record_id: int, owner: str | None = None) -> str:
    """Bring one object's Stripe side up to its latest version. Returns what happened."""
    owner = owner or f"inline:{uuid.uuid4().hex}"
    if not _product_ready(record_id):
        # Without a lease: the product's own task embeds this price in its creation.
        return WAITING
    while True:
        record = _acquire(record_id, owner)
        if record is None:
            return "nothing to do"
        version = record.version
        try:
            result = PUSHERS[record.kind](record, owner)
        except MirrorRejected as error:
            _finish(record_id, owner, failure=str(error))
            _release_waiting_prices(record)
            return "failed"
        except stripe.StripeError as error:
            if classify(error) != PERMANENT:
                # Raised by a call outside the gateway's retries (dj-stripe fetching a related object).
                _finish(record_id, owner, error=error)
                raise StripeUnavailable(str(error)) from error
            message = f"{error.user_message or error} (request {getattr(error, 'request_id', None)})"
            log.warning("mirror rejected app_ref=%s error=%s", record.app_ref, message)
            _finish(record_id, owner, failure=message)
            _release_waiting_prices(record)
            return "failed"
        except BaseException as error:  # Ctrl-C in a command too: the lease goes back at once
            _finish(record_id, owner, error=error)
            raise
        if result == WAITING:
            _finish(record_id, owner)
            return "waiting"
        if _complete(record_id, owner, version, result):
            return "synced"


def _product_ready(record_id: int) -> bool:
    """A price can go once its product is in Stripe; until then its product is nudged instead."""
    record = MirrorRecord.objects.filter(pk=record_id, kind=MirrorKind.PRICE).first()
    if record is None or record.stripe_id:
        return True
    product_id = Price.objects.filter(pk=record.object_id).values_list("product_id", flat=True).first()
    if product_id is None:
        return True
    product_record = MirrorRecord.objects.filter(kind=MirrorKind.PRODUCT, object_id=product_id).first()
    if product_record is None:
        mirror_record_change(kind=MirrorKind.PRODUCT, object_id=product_id)
        return False
    return bool(product_record.stripe_id) or product_record.state == MirrorState.FAILED


def _acquire(record_id: int, owner: str) -> MirrorRecord | None:
    now = timezone.now()
    with transaction.atomic():
        record = MirrorRecord.objects.select_for_update().filter(pk=record_id).first()
        if record is None or record.state == MirrorState.FAILED:
            return None
        if record.synced_version >= record.version:
            if record.state != MirrorState.SYNCED:
                record.state = MirrorState.SYNCED
                record.save(update_fields=["state", "updated_at"])
            return None
        held_by_other = record.lease_owner and record.lease_owner != owner
        if held_by_other and record.lease_until and record.lease_until > now:
            return None  # its holder loops until the newest version is in Stripe
        if record.first_attempt_at and now - record.first_attempt_at > LATE_RETRY:
            record.key_generation += 1
            record.first_attempt_at = now
        record.first_attempt_at = record.first_attempt_at or now
        record.lease_owner, record.lease_until = owner, now + _lease_length()
        record.attempts += 1
        record.save(
            update_fields=["lease_owner", "lease_until", "attempts", "first_attempt_at", "key_generation", "updated_at"]
        )
        return record


COMPLETION_FIELDS = [
    "stripe_id",
    "pushed",
    "synced_version",
    "synced_at",
    "last_error",
    "state",
    "lease_owner",
    "lease_until",
    "pending_since",
    "first_attempt_at",
    "attempts",
    "updated_at",
]


def _complete(record_id: int, owner: str, version: int, result: Pushed) -> bool:
    """Record the push; False when a newer version arrived meanwhile and must be pushed too."""
    now = timezone.now()
    with transaction.atomic():
        record = MirrorRecord.objects.select_for_update().get(pk=record_id)
        if record.lease_owner != owner:
            log.warning("mirror lease lost app_ref=%s owner=%s", record.app_ref, owner)
            return True
        record.stripe_id = result.stripe_id
        record.pushed = {**record.pushed, **result.pushed}
        record.synced_version = version
        record.synced_at = now
        record.last_error = ""
        done = record.version == version
        if done:
            record.state = MirrorState.SYNCED
            record.lease_owner, record.lease_until = "", None
            record.pending_since = record.first_attempt_at = None
            record.attempts = 0
        try:
            with transaction.atomic():
                record.save(update_fields=COMPLETION_FIELDS)
        except IntegrityError:
            # Another local object already mirrors to this Stripe object.
            MirrorRecord.objects.filter(pk=record_id).update(
                state=MirrorState.FAILED,
                lease_owner="",
                lease_until=None,
                last_error=f"{result.stripe_id} already mirrors another local object",
            )
            return True
        return done


def _finish(record_id: int, owner: str, *, failure: str | None = None, error: Exception | None = None) -> None:
    """Give the lease back; with `failure`, the row is failed for good with Stripe's reason."""
    from apps.payments.stripe_client import StripeKeySpent

    with transaction.atomic():
        record = MirrorRecord.objects.select_for_update().filter(pk=record_id).first()
        if record is None or record.lease_owner != owner:
            return
        record.lease_owner, record.lease_until = "", None
        if failure is not None:
            record.state, record.last_error = MirrorState.FAILED, failure
        elif error is not None:
            record.last_error = f"{error.__class__.__name__}: {error}"
            if isinstance(error, StripeKeySpent):
                record.key_generation += 1
        record.save()


# --- what Stripe should hold ----------------------------------------------------------------------


def _key(record: MirrorRecord, step: str) -> str:
    return f"{record.app_ref}:v{record.version}:g{record.key_generation}:{step}"


def _metadata(record: MirrorRecord, current: dict) -> dict:
    """Stripe merges metadata: keys removed locally are sent empty to remove them there too."""
    removed = {key: "" for key in record.pushed.get("metadata_keys", []) if key not in current}
    return {**removed, **current}


def _may_be_in_stripe_already(record: MirrorRecord, created_at) -> bool:
    """Worth a search before creating: a day-old retry (Stripe forgot the key), or an object older
    than its mirror row (made before the mirror tracked it, so perhaps put in Stripe another way).
    A brand-new object has no twin to find; its own retries are covered by its idempotency key."""
    return record.key_generation > 0 or created_at < record.created_at - timedelta(seconds=2)


def _search_by_ref(resource, app_ref: str):
    gw = gateway()
    found = gw.call(lambda options: resource.search(params={"query": ref_search_query(app_ref)}, options=options))
    return min(found.data, key=lambda obj: obj.created) if found.data else None


def _missing(error: stripe.StripeError) -> bool:
    return isinstance(error, stripe.InvalidRequestError) and error.code == "resource_missing"


def _update_or_adopt(gw: StripeGateway, service, record: MirrorRecord, fields: dict, created_at):
    """Update the Stripe object we know, or adopt one found by `app_ref`; None when there is none yet."""
    if record.stripe_id:
        try:
            return gw.call(
                lambda options: service.update(record.stripe_id, params=fields, options=options),
                idempotency_key=_key(record, "update"),
            )
        except stripe.InvalidRequestError as error:
            if not _missing(error):
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


def _push_user(record: MirrorRecord, owner: str) -> Pushed | str:
    gw = gateway()
    user = User.objects.filter(pk=record.object_id).first()
    if record.deleted or user is None:
        return _delete_customer(gw, record)
    fields = {"email": user.email, "name": user.name, "metadata": stripe_refs(record.app_ref)}
    # One customer per user, ever: one made earlier (a crash, a payment link) is adopted.
    customer = _update_or_adopt(gw, gw.v1.customers, record, fields, user.date_joined) or gw.call(
        lambda options: gw.v1.customers.create(params=fields, options=options), idempotency_key=_key(record, "create")
    )
    djstripe_models.Customer.sync_from_stripe_data(customer)
    djstripe_models.Customer.objects.filter(id=customer.id).update(subscriber=user)
    return Pushed(customer.id)


def _delete_customer(gw: StripeGateway, record: MirrorRecord) -> Pushed:
    target = record.stripe_id or getattr(_search_by_ref(gw.v1.customers, record.app_ref), "id", "")
    if target:
        try:
            gw.call(lambda options: gw.v1.customers.delete(target, options=options))
        except stripe.InvalidRequestError as error:
            if not _missing(error):
                raise
        djstripe_models.Customer.objects.filter(id=target).update(subscriber=None, date_purged=timezone.now())
    return Pushed(target)


def _price_params(price: Price, app_ref: str) -> dict:
    params = {"currency": price.currency, "unit_amount": price.unit_amount, "metadata": stripe_refs(app_ref)}
    if price.recurring_interval:
        params["recurring"] = {"interval": price.recurring_interval}
    return params


def price_immutable(price: Price) -> dict:
    """What a Stripe price can never change: a new one is made when the catalog changes any of it."""
    return {"currency": price.currency, "unit_amount": price.unit_amount, "interval": price.recurring_interval}


def _push_product(record: MirrorRecord, owner: str) -> Pushed | str:
    gw = gateway()
    product = Product.objects.filter(pk=record.object_id).first()
    if product is None:
        raise MirrorRejected("the product no longer exists locally")
    metadata = _metadata(record, {**product.metadata, **stripe_refs(record.app_ref)})
    fields = {"name": product.name, "description": product.description, "active": product.active, "metadata": metadata}
    pushed = {"metadata_keys": sorted(key for key, value in metadata.items() if value)}
    stripe_product = _update_or_adopt(gw, gw.v1.products, record, fields, product.created_at)
    if stripe_product is None:
        return _create_product(gw, record, owner, product, fields, pushed)
    djstripe_models.Product.sync_from_stripe_data(stripe_product)
    note_stripe_state(stripe_product.id, stripe_product.updated)
    return Pushed(stripe_product.id, pushed)


def note_stripe_state(stripe_id: str, updated: int | None) -> None:
    """Remember the newest `updated` of a Stripe object we wrote, so its older echoes are recognised as stale."""
    if updated is None:
        return
    watermark, _ = StripeWatermark.objects.get_or_create(stripe_id=stripe_id, defaults={"updated": updated})
    StripeWatermark.objects.filter(pk=watermark.pk, updated__lt=updated).update(updated=updated)


def _create_product(gw, record, owner, product, fields, pushed) -> Pushed:
    """One `POST /v1/products`, carrying the product's first price as `default_price_data` when it can."""
    params = {**fields, "expand": ["default_price"]}
    if not params["description"]:
        del params["description"]  # Stripe refuses an empty description on create
    claimed = _claim_first_price(product, owner)
    if claimed is not None:
        price_record, price = claimed
        params["default_price_data"] = _price_params(price, price_record.app_ref)
    try:
        stripe_product = gw.call(
            lambda options: gw.v1.products.create(params=params, options=options),
            idempotency_key=_key(record, "create"),
        )
        djstripe_models.Product.sync_from_stripe_data(stripe_product)
        note_stripe_state(stripe_product.id, stripe_product.updated)
        if claimed is not None:
            djstripe_models.Price.sync_from_stripe_data(stripe_product.default_price)
    except Exception as error:
        # The claimed price goes back; a retry of this task claims it again and replays the same create.
        if claimed is not None:
            _finish(claimed[0].pk, owner, error=error)
        raise
    if claimed is not None:
        price_record, price = claimed
        default_price = stripe_product.default_price
        settled = _complete(
            price_record.pk,
            owner,
            price_record.version,
            Pushed(default_price.id, {"immutable": price_immutable(price)}),
        )
        if not settled:  # the price changed while its product was created: its own task takes over
            _finish(price_record.pk, owner)
            enqueue(price_record.pk)
    _release_waiting_prices(record, except_record_id=claimed[0].pk if claimed else None)
    return Pushed(stripe_product.id, pushed)


def _release_waiting_prices(product_record: MirrorRecord, except_record_id: int | None = None) -> None:
    """Prices that waited for their product go once it is in Stripe (or fail once it cannot be)."""
    if product_record.kind != MirrorKind.PRODUCT:
        return
    waiting = MirrorRecord.objects.filter(
        kind=MirrorKind.PRICE,
        state=MirrorState.PENDING,
        object_id__in=Price.objects.filter(product_id=product_record.object_id).values("pk"),
    ).exclude(pk=except_record_id)
    for record_id in waiting.values_list("pk", flat=True):
        transaction.on_commit(lambda record_id=record_id: enqueue(record_id), robust=True)


def _claim_first_price(product: Product, owner: str) -> tuple[MirrorRecord, Price] | None:
    """Take the lease of the product's first active price that is not in Stripe yet, if nobody holds it."""
    now = timezone.now()
    for price in product.prices.filter(active=True).order_by("pk"):
        with transaction.atomic():
            price_record = (
                MirrorRecord.objects.select_for_update().filter(kind=MirrorKind.PRICE, object_id=price.pk).first()
            )
            if price_record is None or price_record.stripe_id or price_record.state != MirrorState.PENDING:
                continue
            held = price_record.lease_owner and price_record.lease_owner != owner
            if held and price_record.lease_until and price_record.lease_until > now:
                continue
            price_record.lease_owner, price_record.lease_until = owner, now + _lease_length()
            price_record.first_attempt_at = price_record.first_attempt_at or now
            price_record.save()
            return price_record, price
    return None


def _push_price(record: MirrorRecord, owner: str) -> Pushed | str:
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
    wanted = price_immutable(price)
    if record.stripe_id and record.pushed.get("immutable") == wanted:
        stripe_price = gw.call(
            lambda options: gw.v1.prices.update(
                record.stripe_id, params={"active": price.active, "metadata": metadata}, options=options
            ),
            idempotency_key=_key(record, "update"),
        )
    else:
        stripe_price = _replace_price(gw, record, price, product_record.stripe_id)
    djstripe_models.Price.sync_from_stripe_data(stripe_price)
    return Pushed(stripe_price.id, {"immutable": wanted})


def _replace_price(gw, record: MirrorRecord, price: Price, stripe_product_id: str):
    """Amount, currency and recurrence never change in Stripe: a new Price, made the default in the old one's place."""
    old_id = record.stripe_id
    stripe_price = None
    if not old_id and _may_be_in_stripe_already(record, price.created_at):
        stripe_price = _search_by_ref(gw.v1.prices, record.app_ref)
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
    if price.active and (current_default == old_id if old_id else not current_default):
        stripe_product = gw.call(
            lambda options: gw.v1.products.update(
                stripe_product_id, params={"default_price": stripe_price.id}, options=options
            ),
            idempotency_key=_key(record, "default"),
        )
        djstripe_models.Product.sync_from_stripe_data(stripe_product)
        note_stripe_state(stripe_product.id, stripe_product.updated)
    if old_id:
        archived = gw.call(
            lambda options: gw.v1.prices.update(old_id, params={"active": False}, options=options),
            idempotency_key=_key(record, "archive-previous"),
        )
        djstripe_models.Price.sync_from_stripe_data(archived)
    return stripe_price


PUSHERS = {MirrorKind.USER: _push_user, MirrorKind.PRODUCT: _push_product, MirrorKind.PRICE: _push_price}
