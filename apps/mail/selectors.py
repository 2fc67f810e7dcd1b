"""Reads of the outbox."""

from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from apps.mail.models import MessageState, OutgoingMessage
from config.days import seconds_since

WAITING_STATES = (MessageState.QUEUED, MessageState.SENDING, MessageState.FAILED)


def outbox_health(*, sent_within: timedelta = timedelta(hours=24)) -> dict:
    """Messages waiting, being sent and failed (all of them), those sent lately, and how overdue the
    oldest waiting message is. Each count is an indexed query, so the outbox's history costs nothing."""
    now = timezone.now()
    waiting = dict(
        OutgoingMessage.objects.filter(state__in=WAITING_STATES)
        .order_by()
        .values("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    sent = OutgoingMessage.objects.filter(created_at__gte=now - sent_within, state=MessageState.SENT).count()
    oldest_due = (
        OutgoingMessage.objects.filter(state=MessageState.QUEUED)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    return {
        "by_state": {**{state: waiting.get(state, 0) for state in WAITING_STATES}, "sent_lately": sent},
        "oldest_due": oldest_due,
        "overdue_seconds": seconds_since(oldest_due),
    }
