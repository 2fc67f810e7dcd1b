"""Processing stored events: take the next one ready, run its handler, note the outcome or the failure.

Which handler an event type has is the literal table in `handlers`; a type without one
is stored as ignored. A handler that fails is retried with backoff for as long as
Stripe itself would have retried, then parked for an operator.
"""

import logging
from datetime import datetime, timedelta
from traceback import format_exc

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from djstripe import models as djstripe_models

from apps.payments.orders.errors import EventNotReady
from apps.payments.webhooks.handlers import HANDLERS
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from apps.payments.webhooks.outcomes import EventOutcome
from config import metrics
from config.outcomes import Outcome

log = logging.getLogger("apps.payments.webhooks")


def process_event(*, webhook_event_id: int) -> Outcome:
    """Process one stored event, whatever its retry time (replays, tests); raises when the handler fails."""
    with transaction.atomic():
        record = WebhookEvent.objects.select_for_update().filter(pk=webhook_event_id).first()
        if record is None or record.state in (WebhookEventState.PROCESSED, WebhookEventState.IGNORED):
            return EventOutcome.ALREADY_DONE.of()
        return _process(record)


def next_ready(now: datetime) -> QuerySet[WebhookEvent]:
    """The waiting events a drain may take now, oldest first, without those another drain holds (through
    `payments_webhook_waiting_idx`: as quick with millions of settled events as with none)."""
    ready = WebhookEvent.objects.filter(state=WebhookEventState.RECEIVED).filter(
        Q(retry_at__isnull=True) | Q(retry_at__lte=now)
    )
    skip_locked = connection.features.has_select_for_update_skip_locked
    return ready.select_for_update(skip_locked=skip_locked).order_by("pk")


def process_next() -> tuple[int, Outcome] | None:
    """Take the next event ready for processing (none another drain holds) and process it.

    Returns (event id, what happened), or None when no event is ready. A handler that
    fails is noted for a retry with backoff, or parked as failed after the last attempt.
    """
    record_id = None
    try:
        with transaction.atomic():
            record = next_ready(timezone.now()).first()
            if record is None:
                return None
            record_id = record.pk
            return record_id, _process(record)
    except Exception as error:
        if record_id is None:  # no event was taken: nothing to note, the caller sees the error
            raise
        return record_id, note_failure(webhook_event_id=record_id, error=error, traceback=format_exc())


def _process(record: WebhookEvent) -> Outcome:
    handler = HANDLERS.get(record.type)
    if handler is None:
        outcome, state = EventOutcome.NOT_HANDLED.of(), WebhookEventState.IGNORED
    else:
        event = djstripe_models.Event.objects.values_list("stripe_data", flat=True).get(id=record.stripe_id)
        if bool(event.get("livemode")) != settings.STRIPE_LIVE_MODE:
            # A live payment must never move a test order, nor a test event a live one.
            outcome, state = _mode_refusal(event), WebhookEventState.REFUSED
            log.error("webhook refused event=%s type=%s reason=%s", record.stripe_id, record.type, outcome)
        else:
            outcome, state = handler(event), WebhookEventState.PROCESSED
    record.attempts += 1
    record.state, record.outcome, record.processed_at = state, str(outcome)[:255], timezone.now()
    metrics.WEBHOOKS_PROCESSED.labels(record.type, state).inc()
    metrics.WEBHOOK_LAG.observe((record.processed_at - record.received_at).total_seconds())
    record.last_error = record.traceback = ""
    record.retry_at = None
    record.save(update_fields=["attempts", "state", "outcome", "processed_at", "last_error", "traceback", "retry_at"])
    return outcome


def _mode_refusal(event: dict) -> Outcome:
    ours = "live" if settings.STRIPE_LIVE_MODE else "test"
    theirs = "live" if event.get("livemode") else "test"
    return EventOutcome.OTHER_MODE.of(theirs=theirs, ours=ours)


def note_failure(*, webhook_event_id: int, error: BaseException, traceback: str) -> Outcome:
    """Count a failed attempt. Stripe was told 200 and will not send the event again, so it is retried
    after 2, 4, 8 ... s (at most `WEBHOOK_RETRY_MAX_SECONDS` apart) until `WEBHOOK_RETRY_HORIZON_SECONDS`
    after it arrived (three days, as long as Stripe itself retries); only then is it parked as failed."""
    record = WebhookEvent.objects.get(pk=webhook_event_id)
    attempts = record.attempts + 1
    now = timezone.now()
    delay = retry_delay(attempts)
    park = now >= record.received_at + timedelta(seconds=settings.WEBHOOK_RETRY_HORIZON_SECONDS)
    waiting = isinstance(error, EventNotReady)
    WebhookEvent.objects.filter(pk=webhook_event_id).update(
        attempts=attempts,
        last_error=f"{error.__class__.__name__}: {error}",
        traceback="" if waiting else traceback,
        state=WebhookEventState.FAILED if park else WebhookEventState.RECEIVED,
        retry_at=None if park else now + timedelta(seconds=delay),
        outcome=str(EventOutcome.WAITING.of(reason=error))[:255] if waiting else record.outcome,
    )
    metrics.WEBHOOKS_PROCESSED.labels(record.type, "parked" if park else "retry").inc()
    if park:
        log.error(
            "webhook event parked event=%s type=%s attempts=%s error=%s", record.stripe_id, record.type, attempts, error
        )
        return EventOutcome.PARKED.of()
    level = logging.INFO if waiting else logging.WARNING
    log.log(
        level, "webhook event retried event=%s attempt=%s in=%.1fs error=%s", record.stripe_id, attempts, delay, error
    )
    return (EventOutcome.WAITS_AND_RETRIED if waiting else EventOutcome.RETRIED).of(delay=delay)


def retry_delay(attempts: int) -> float:
    """The wait after the `attempts`-th failure: doubling from the base, capped."""
    doublings = min(attempts - 1, 40)  # far past any cap, and no float overflow
    return min(settings.WEBHOOK_RETRY_MAX_SECONDS, settings.WEBHOOK_RETRY_BASE_SECONDS * 2**doublings)
