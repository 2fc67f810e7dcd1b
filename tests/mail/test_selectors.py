"""`outbox_health` on its own: what the dashboard and the metrics read of the outbox."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.mail.models import MessageState
from apps.mail.selectors import outbox_health
from tests.mail.helpers import outgoing

pytestmark = pytest.mark.django_db


def test_an_empty_outbox_counts_zero_everywhere_and_nothing_overdue():
    health = outbox_health()

    assert health["by_state"] == {"queued": 0, "sending": 0, "failed": 0, "sent_lately": 0}
    assert health["oldest_due"] is None
    assert health["overdue_seconds"] == 0.0


def test_failed_messages_count_however_old_but_sent_ones_only_within_the_window():
    outgoing(state=MessageState.FAILED, created_ago=timedelta(days=90))
    outgoing(state=MessageState.SENT, created_ago=timedelta(hours=2))
    outgoing(state=MessageState.SENT, created_ago=timedelta(days=3))

    day = outbox_health()["by_state"]
    hour = outbox_health(sent_within=timedelta(hours=1))["by_state"]
    week = outbox_health(sent_within=timedelta(days=7))["by_state"]

    assert (day["failed"], day["sent_lately"]) == (1, 1)
    assert hour["sent_lately"] == 0
    assert week["sent_lately"] == 2


def test_the_oldest_due_is_the_earliest_queued_message_not_a_failed_or_sending_one():
    now = timezone.now()
    outgoing(state=MessageState.FAILED, next_attempt_at=now - timedelta(hours=5))
    outgoing(state=MessageState.SENDING, next_attempt_at=now - timedelta(hours=4))
    oldest = outgoing(next_attempt_at=now - timedelta(minutes=10))
    outgoing(next_attempt_at=now - timedelta(minutes=2))

    health = outbox_health()

    assert health["oldest_due"] == oldest.next_attempt_at
    assert 600 <= health["overdue_seconds"] < 660


def test_a_message_waiting_for_a_retry_later_is_not_overdue():
    outgoing(next_attempt_at=timezone.now() + timedelta(minutes=15))

    health = outbox_health()

    assert health["by_state"]["queued"] == 1
    assert health["overdue_seconds"] == 0.0
