"""The mirror's engine: local users, products and prices reach Stripe exactly once, in order.

`mirror_sync` takes the lease on an object's mirror row (one pusher per object at a
time), reads the object as it is now, pushes it (`pushers`), records Stripe's answer,
and loops while newer versions arrived meanwhile. A task that runs twice, late or out
of order finds the version already pushed and does nothing; a worker killed in the
middle of a call leaves a key that Stripe replays to its redelivered task.
"""

import logging
import uuid

import stripe

from apps.payments.gateway.errors import ErrorClass, StripeUnavailable, classify
from apps.payments.mirror import lease_heartbeats, leases
from apps.payments.mirror.models import MirrorRecord
from apps.payments.mirror.outbox import release_waiting_prices
from apps.payments.mirror.outcomes import Completion, MirrorRejected, SyncOutcome, Waiting
from apps.payments.mirror.pushers import PUSHERS
from config import metrics

log = logging.getLogger("apps.payments.mirror")

COMPLETIONS = {
    Completion.DONE: SyncOutcome.SYNCED,
    Completion.LEASE_LOST: SyncOutcome.LEASE_LOST,
    Completion.CONFLICT: SyncOutcome.CONFLICT,
}


def mirror_sync(*, record_id: int, owner: str | None = None) -> SyncOutcome:
    """Bring one object's Stripe side up to its latest version."""
    owner = owner or f"inline:{uuid.uuid4().hex}"
    with lease_heartbeats.keep_alive(owner):  # so that a lease of ours is not taken over while we push
        outcome = _sync(record_id, owner)
    metrics.MIRROR_SYNCS.labels(outcome).inc()
    return outcome


def _sync(record_id: int, owner: str) -> SyncOutcome:
    while True:
        record = leases.acquire(record_id, owner)
        if record is None:
            return SyncOutcome.NOTHING_TO_DO
        if isinstance(record, Waiting):
            # Without a lease: the product's own task embeds this price in its creation, or releases it after.
            return SyncOutcome.WAITING
        version, first_push = record.version, not record.stripe_id
        try:
            result = PUSHERS[record.kind](record, owner)
        except MirrorRejected as error:
            return _failed(record, owner, str(error))
        except stripe.StripeError as error:
            if classify(error) != ErrorClass.PERMANENT:
                # Raised by a call outside the gateway's retries (dj-stripe fetching a related object).
                leases.finish(record_id, owner, error=error)
                raise StripeUnavailable(str(error)) from error
            message = f"{error.user_message or error} (request {getattr(error, 'request_id', None)})"
            log.warning("mirror rejected app_ref=%s error=%s", record.app_ref, message)
            return _failed(record, owner, message)
        except BaseException as error:  # Ctrl-C in a command too: the lease goes back at once
            leases.finish(record_id, owner, error=error)
            raise
        if isinstance(result, Waiting):
            leases.finish(record_id, owner)
            return SyncOutcome.WAITING
        completion = result.recorded or leases.complete(record_id, owner, version, result)
        if first_push and completion != Completion.LEASE_LOST:  # (the task that took the lease over releases them)
            # Committed now, in Stripe or failed: a price recorded while its product was on its way goes
            # (or fails in its turn).
            release_waiting_prices(record)
        if completion != Completion.AGAIN:
            return COMPLETIONS[completion]


def _failed(record: MirrorRecord, owner: str, message: str) -> SyncOutcome:
    leases.finish(record.pk, owner, failure=message)
    release_waiting_prices(record)  # they fail in their turn: their product cannot be in Stripe
    return SyncOutcome.FAILED
