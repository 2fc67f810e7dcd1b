"""Billing's one lock, and what it guards: a subscription's state (with its invoices) is stored by one process
at a time, and never an older read over a newer one.

A worker notes the version (`stored_version`) before it reads Stripe, and stores what it read only if no other
store came in between (`storing_state(read_since=...)`); otherwise it reads again. A web request that changed
the subscription stores Stripe's answer to its change at once (a read after its own write, so its next
request is judged on it), but never waits for the lock (`storing_answer`): a drain holds it until its event
commits, which may be after a Stripe call. When the lock is busy, or another store came in since the change
was asked, the request queues a fresh read by a worker.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, transaction
from django.db.models import F

from apps.payments.billing.models import SubscriptionVersion


def stored_version(key: str) -> int:
    """How many times the subscription `key` was stored so far; note it before asking Stripe."""
    return SubscriptionVersion.objects.get_or_create(key=key)[0].version


@contextmanager
def storing_state(key: str, *, read_since: int | None = None) -> Iterator[bool]:
    """Inside: whether to store now. With `read_since` (the version noted before a read), only if nothing was
    stored since; without it, always (a request's own change). The version moves on when a store is done."""
    with transaction.atomic():
        SubscriptionVersion.objects.get_or_create(key=key)
        row = SubscriptionVersion.objects.select_for_update().get(key=key)
        store = read_since is None or row.version == read_since
        yield store
        if store:
            SubscriptionVersion.objects.filter(key=key).update(version=F("version") + 1)


@contextmanager
def storing_answer(key: str, *, asked_at: int) -> Iterator[tuple[bool, bool]]:
    """For a web request, Stripe's answer to its own change: inside, (store, overtaken). `store` is False while
    another process is storing this subscription (never waited for); `overtaken` when a store came in since
    the change was asked (`asked_at`, the version noted before). Either way the caller queues a fresh read."""
    with transaction.atomic():
        SubscriptionVersion.objects.get_or_create(key=key)
        try:
            with transaction.atomic():
                row = SubscriptionVersion.objects.select_for_update(nowait=True).get(key=key)
        except DatabaseError:  # locked by a drain storing it right now
            yield False, True
            return
        yield True, row.version != asked_at
        SubscriptionVersion.objects.filter(key=key).update(version=F("version") + 1)
