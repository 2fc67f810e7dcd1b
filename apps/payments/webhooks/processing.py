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

from apps.payments.gateway import reads
from apps.payments.orders.errors import EventNotReady
from apps.payments.webhooks.handlers import HANDLERS
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from apps.payments.webhooks.outcomes import EventOutcome
from config import metrics
from config.outcomes import Outcome

log = logging.getLogger("apps.payments.webhooks")


# Events claimed and applied in one transaction, with one commit for them all, while their handlers let them.
BATCH_SIZE = 50

# What processing writes back to an event's row.
OUTCOME_FIELDS = ["attempts", "state", "outcome", "processed_at", "last_error", "traceback", "retry_at"]


def process_event(*, webhook_event_id: int) -> Outcome:
    """Process one stored event, whatever its retry time (replays, tests); raises when the handler fails."""

    def apply() -> Outcome:
        with transaction.atomic():
            _hold(webhook_event_id)
            record = WebhookEvent.objects.select_for_update().filter(pk=webhook_event_id).first()
            if record is None or record.state in (WebhookEventState.PROCESSED, WebhookEventState.IGNORED):
                return EventOutcome.ALREADY_DONE.of()
            outcome = _process(record, _payloads([record]))
            record.save(update_fields=OUTCOME_FIELDS)
        _count([record])
        return outcome

    return reads.run(apply)


def next_ready(now: datetime) -> QuerySet[WebhookEvent]:
    """The waiting events a drain may take now, oldest first (through `payments_webhook_waiting_idx`: as quick
    with millions of settled events as with none)."""
    ready = WebhookEvent.objects.filter(state=WebhookEventState.RECEIVED).filter(
        Q(retry_at__isnull=True) | Q(retry_at__lte=now)
    )
    return ready.order_by("pk")


# The class of the advisory locks that say which drain holds which event (any number other locks do not use).
EVENT_LOCKS = 0x57455654
# How many waiting events a claim looks at to find its batch among those other drains hold.
CANDIDATES = 4 * BATCH_SIZE


def claim(now: datetime, *, size: int = BATCH_SIZE, only: list[int] | None = None) -> list[WebhookEvent]:
    """Take up to `size` ready events no other drain holds (of `only`, when given), for this transaction.

    Each is held by an advisory lock on its id, not a row lock: a redelivery's acknowledgement counts itself on
    the row and must never wait for a batch being applied. The rows are read again once locked, so an event a
    drain finished between this statement's start and its lock is left alone."""
    ready = next_ready(now)
    if only is not None:
        ready = ready.filter(pk__in=only)
    if connection.vendor != "postgresql":  # one process (`make run`): nobody to share with
        return list(ready[:size])
    candidates, params = ready.values("id")[:CANDIDATES].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM ({candidates}) AS waiting "  # noqa: S608 - the ORM's own SQL; values are parameters
            "WHERE pg_try_advisory_xact_lock(%s, (id %% 2147483647)::integer) LIMIT %s",
            [*params, EVENT_LOCKS, size],
        )
        held = [row[0] for row in cursor.fetchall()]
    return list(ready.filter(pk__in=held)) if held else []


def _hold(record_id: int) -> None:
    """Wait for whichever drain holds the event, then hold it (a replay)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, (%s %% 2147483647)::integer)", [EVENT_LOCKS, record_id])


def process_next() -> tuple[int, Outcome] | None:
    """Take the next event ready for processing (none another drain holds) and process it.

    Returns (event id, what happened), or None when no event is ready. A handler that
    fails is noted for a retry with backoff, or parked as failed after the last attempt.
    """
    done = process_batch(size=1)
    return done[0] if done else None


def process_batch(size: int = BATCH_SIZE) -> list[tuple[int, Outcome]]:
    """Take up to `size` events ready for processing and apply them in one transaction: one claim, one read of
    their payloads, one write of their outcomes and one commit for them all.

    An event whose handler fails, or must first read from Stripe (`gateway.reads`), undoes the batch: the
    events ahead of it are applied again together, it is processed alone (its read made with nothing held, a
    failure noted for a retry), and those after it go on as a batch of their own. Returns (event id, what
    happened) for each event processed; an empty list when none was ready."""
    attempt = _Attempt()
    try:
        return _apply_together(attempt, size=size)
    except Exception:
        if not attempt.claimed:  # no event was taken: nothing to note, the caller sees the error
            raise
    return _apply_in_order(attempt)


class _Attempt:
    """How far one batch got: the events it took, in order, and how many of them were applied."""

    def __init__(self) -> None:
        self.claimed: list[int] = []
        self.applied = 0
        self.needed: reads.ReadFirst | None = None  # the read from Stripe that stopped it, if one did


def _apply_together(attempt: _Attempt, *, size: int = BATCH_SIZE, only: list[int] | None = None) -> list:
    """One transaction: claim the events (the next `size` ready, or those of `only` still ready), apply each in
    order, write their outcomes. Inside, a handler that would read from Stripe stops the batch instead."""
    with transaction.atomic(), reads.answering(reads.Answers()):
        records = claim(timezone.now(), size=size, only=only)
        attempt.claimed = [record.pk for record in records]
        if not records:
            return []
        payloads = _payloads(records)
        done = []
        try:
            for record in records:
                done.append((record.pk, _process(record, payloads)))
                attempt.applied += 1
        except reads.ReadFirst as needed:
            attempt.needed = needed
            raise
        if len(records) == 1:
            records[0].save(update_fields=OUTCOME_FIELDS)
        else:
            WebhookEvent.objects.bulk_update(records, OUTCOME_FIELDS)
    _count(records)
    return done


def _apply_in_order(failed: _Attempt) -> list[tuple[int, Outcome]]:
    """After a batch stopped at one event: those ahead of it together, it alone, the rest as a new batch."""
    done: list[tuple[int, Outcome]] = []
    while failed.claimed:
        ahead, stopped, rest = (
            failed.claimed[: failed.applied],
            failed.claimed[failed.applied],
            failed.claimed[failed.applied + 1 :],
        )
        if ahead:
            done += _apply_ids(ahead)
        # An event to be read from Stripe is this drain's once set aside; another that set it aside reads it.
        mine = failed.needed is None or _set_aside(stopped)
        if mine and (alone := _process_alone(stopped, first_read=failed.needed)) is not None:
            done.append(alone)
        if not rest:
            break
        failed = _Attempt()
        try:
            return done + _apply_together(failed, only=rest)
        except Exception:
            if not failed.claimed:
                raise
    return done


def _apply_ids(ids: list[int]) -> list[tuple[int, Outcome]]:
    """Events that were applied a moment ago in a batch that was undone: together again, as a rule."""
    attempt = _Attempt()
    try:
        return _apply_together(attempt, only=ids)
    except Exception:
        if not attempt.claimed:
            raise
    return _apply_in_order(attempt)


# How long an event waits for the drain that reads Stripe for it before any drain may take it (a drain killed
# meanwhile): longer than a read may take, budget wait and retries included.
SET_ASIDE_SECONDS = 60


def _set_aside(record_id: int) -> bool:
    """Keep other drains off an event while this one reads Stripe for it with nothing held: each would read it
    again (the undone batch released it, and it is the oldest waiting). False when another drain, whose batch
    met it at the same moment, set it aside first: that one reads it."""
    now = timezone.now()
    return bool(
        WebhookEvent.objects.filter(pk=record_id, state=WebhookEventState.RECEIVED)
        .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
        .update(retry_at=now + timedelta(seconds=SET_ASIDE_SECONDS))
    )


def _process_alone(record_id: int, first_read: reads.ReadFirst | None = None) -> tuple[int, Outcome] | None:
    """One event in a transaction of its own, its reads from Stripe made before it (`first_read`: the one it
    is known to need, the event set aside for this drain); a failure is noted for a retry. None when another
    drain has taken it meanwhile."""

    def apply() -> tuple[int, Outcome] | None:
        with transaction.atomic():
            record = _take_set_aside(record_id) if first_read is not None else _take(record_id)
            if record is None:
                return None
            outcome = _process(record, _payloads([record]))
            record.save(update_fields=OUTCOME_FIELDS)
        _count([record])
        return record_id, outcome

    try:
        return reads.run(apply, first_read=first_read)
    except Exception as error:  # noqa: BLE001 - any handler's failure is noted, and the event retried
        return record_id, note_failure(webhook_event_id=record_id, error=error, traceback=format_exc())


def _take(record_id: int) -> WebhookEvent | None:
    return next(iter(claim(timezone.now(), size=1, only=[record_id])), None)


def _take_set_aside(record_id: int) -> WebhookEvent | None:
    """An event set aside for this drain: another drain's batch that took it a moment before leaves it to us
    (`_set_aside` tells it so), so wait for that batch to let go rather than skip it."""
    _hold(record_id)
    return WebhookEvent.objects.filter(pk=record_id, state=WebhookEventState.RECEIVED).first()


def _payloads(records: list[WebhookEvent]) -> dict[str, dict]:
    """The stored events' payloads (dj-stripe's copy), in one query, for those a handler will read."""
    wanted = [record.stripe_id for record in records if record.type in HANDLERS]
    if not wanted:
        return {}
    return dict(djstripe_models.Event.objects.filter(id__in=wanted).values_list("id", "stripe_data"))


def _process(record: WebhookEvent, payloads: dict[str, dict]) -> Outcome:
    """Apply one event (its row is written by the caller, with those of its batch)."""
    handler = HANDLERS.get(record.type)
    if handler is None:
        outcome, state = EventOutcome.NOT_HANDLED.of(), WebhookEventState.IGNORED
    else:
        event = payloads[record.stripe_id]
        if bool(event.get("livemode")) != settings.STRIPE_LIVE_MODE:
            # A live payment must never move a test order, nor a test event a live one.
            outcome, state = _mode_refusal(event), WebhookEventState.REFUSED
            log.error("webhook refused event=%s type=%s reason=%s", record.stripe_id, record.type, outcome)
        else:
            outcome, state = handler(event), WebhookEventState.PROCESSED
    record.attempts += 1
    record.state, record.outcome, record.processed_at = state, str(outcome)[:255], timezone.now()
    record.last_error = record.traceback = ""
    record.retry_at = None
    return outcome


def _count(records: list[WebhookEvent]) -> None:
    """Metrics of events whose outcomes are committed (a batch undone counts nothing)."""
    for record in records:
        metrics.WEBHOOKS_PROCESSED.labels(record.type, record.state).inc()
        metrics.WEBHOOK_LAG.observe((record.processed_at - record.received_at).total_seconds())


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
