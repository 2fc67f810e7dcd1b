"""A client's `Idempotency-Key` on requests that move money, as Stripe treats its own.

The first request with a key runs and its answer is kept; the same key from the same user
(for the same purpose) gets that answer back for `IDEMPOTENCY_KEY_HOURS`. The same key
with another request is a conflict, and so is a second request while the first still
runs. An answer that says nothing happened (5xx: Stripe unreachable) is not kept, so the
client's retry with the same key runs again.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.payments.orders.models import IdempotentRequest
from config.errors import Conflict

MAX_KEY_LENGTH = 255
# A first request still "running" after this long died with its process: its key may be used again.
ABANDONED_AFTER = timedelta(minutes=5)


class IdempotencyConflict(Conflict):
    """The key was used for another request, or its first request is still running."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict
    replayed: bool = False


def request_fingerprint(request: dict) -> str:
    """The same request (same values, whatever the order of its keys) hashes the same."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def idempotent(*, user, scope: str, key: str | None, request: dict, run: Callable[[], Answer]) -> Answer:
    """Run `run()` once per (user, scope, key); without a key, simply run it."""
    if not key:
        return run()
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise IdempotencyConflict(f"An Idempotency-Key is at most {MAX_KEY_LENGTH} printable characters.")
    fingerprint = request_fingerprint(request)
    record = _claim(user=user, scope=scope, key=key, fingerprint=fingerprint)
    if record is not None:
        if record.fingerprint != fingerprint:
            raise IdempotencyConflict(
                "This Idempotency-Key was already used for another request; use a new key for a new request."
            )
        if record.response_status is None:
            raise IdempotencyConflict("A request with this Idempotency-Key is still being processed; retry shortly.")
        return Answer(record.response_status, record.response_body, replayed=True)
    mine = IdempotentRequest.objects.filter(user=user, scope=scope, key=key)
    try:
        answer = run()
    except BaseException:
        mine.delete()  # nothing was answered: the client's retry with this key runs again
        raise
    if answer.status >= 500:
        mine.delete()
    else:
        mine.update(response_status=answer.status, response_body=answer.body)
    return answer


def _claim(*, user, scope: str, key: str, fingerprint: str) -> IdempotentRequest | None:
    """None when this request now owns the key; else the row of the request that does."""
    now = timezone.now()
    expired = now - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    rows = IdempotentRequest.objects.filter(user=user, scope=scope, key=key)
    rows.filter(created_at__lt=expired).delete()
    rows.filter(response_status__isnull=True, created_at__lt=now - ABANDONED_AFTER).delete()
    while True:
        try:
            # Committed at once (outside any request transaction), so a concurrent twin sees it.
            with transaction.atomic():
                IdempotentRequest.objects.create(user=user, scope=scope, key=key, fingerprint=fingerprint)
        except IntegrityError:
            holder = rows.first()
            if holder is not None:
                return holder
            continue  # its request failed and gave the key back a moment ago: take it
        return None
