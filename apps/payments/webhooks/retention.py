"""How long received events are kept: settled ones go after `WEBHOOK_EVENT_RETENTION_DAYS`, parked and waiting
ones stay until an operator deals with them.

Both copies of an event go together: ours (`WebhookEvent`, what processing did) and dj-stripe's (`Event`, the
raw payload). An event is the proof that a delivery was seen, so none is pruned while Stripe may still deliver
it again (three days, `STRIPE_REDELIVERY_DAYS`; a longer `WEBHOOK_RETRY_HORIZON_SECONDS` counts instead): a
redelivery after that would be processed twice.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from djstripe import models as djstripe_models

from apps.payments.webhooks.models import WebhookEvent, WebhookEventState

# What is settled: processed, ignored (a type we do not handle) or refused (the other mode's).
SETTLED = (WebhookEventState.PROCESSED, WebhookEventState.IGNORED, WebhookEventState.REFUSED)
BATCH = 2000  # rows per transaction: short locks, steady progress on a table of millions


class PruneRefused(ValueError):
    """A cutoff inside Stripe's redelivery horizon."""


def redelivery_horizon() -> datetime:
    """Nothing received after this may be pruned: Stripe may still deliver it again (and our own retries
    of a failing event may still be under way)."""
    keep = max(settings.STRIPE_REDELIVERY_DAYS * 86400, settings.WEBHOOK_RETRY_HORIZON_SECONDS)
    return timezone.now() - timedelta(seconds=keep)


def default_cutoff() -> datetime:
    return timezone.now() - timedelta(days=settings.WEBHOOK_EVENT_RETENTION_DAYS)


def prunable(before: datetime):
    return WebhookEvent.objects.filter(state__in=SETTLED, received_at__lt=before)


def prune(*, before: datetime, on_batch: Callable[[int], None] | None = None) -> int:
    """Delete settled events received before `before`, both copies, a batch at a time; answers how many."""
    if before > redelivery_horizon():
        raise PruneRefused(
            f"events received after {redelivery_horizon():%Y-%m-%d %H:%M} may still be delivered again by Stripe; "
            "pruning them would let a redelivery be processed twice"
        )
    pruned = 0
    while True:
        with transaction.atomic():
            batch = list(prunable(before).order_by().values_list("pk", "stripe_id")[:BATCH])
            if not batch:
                return pruned
            pks, stripe_ids = zip(*batch, strict=True)
            # dj-stripe's webhook triggers (unused here) point at its events: the ORM sets them null first.
            djstripe_models.Event.objects.filter(id__in=stripe_ids).only("pk").delete()
            WebhookEvent.objects.filter(pk__in=pks).delete()
        pruned += len(batch)
        if on_batch is not None:
            on_batch(len(batch))
