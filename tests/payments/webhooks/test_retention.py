"""Retention of received events: settled ones go after a while, both copies; parked and waiting ones stay;
nothing goes while Stripe may still deliver it again."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from djstripe import models as djstripe_models

from apps.payments.webhooks.ingest import webhook_receive
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from apps.payments.webhooks.tasks import webhook_events_prune_task
from tests.payments.webhook_signing import event
from tests.test_settings import _boot

pytestmark = pytest.mark.django_db


def received(event_id: str, state: str, days_ago: float) -> str:
    webhook_receive(event=event("product.updated", {"id": "prod_x", "object": "product"}, event_id=event_id))
    WebhookEvent.objects.filter(stripe_id=event_id).update(
        state=state, received_at=timezone.now() - timedelta(days=days_ago)
    )
    return event_id


def stored() -> tuple[set[str], set[str]]:
    ours = set(WebhookEvent.objects.values_list("stripe_id", flat=True))
    return ours, set(djstripe_models.Event.objects.values_list("id", flat=True))


def prune(*argv: str) -> str:
    out = io.StringIO()
    call_command("stripe_events", *argv, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_settled_old_events_go_with_their_raw_copy_and_parked_or_waiting_ones_stay():
    for state in ("processed", "ignored", "refused"):
        received(f"evt_old_{state}", state, 40)
    kept = {received("evt_old_failed", WebhookEventState.FAILED, 40), received("evt_old_waiting", "received", 40)}
    kept.add(received("evt_recent", WebhookEventState.PROCESSED, 10))

    output = prune("--prune-before", "30d")

    assert stored() == (kept, kept)
    assert "Pruned 3 event(s)" in output
    assert "kept 2 older one(s) still waiting or parked" in output


def test_alone_it_prunes_what_is_older_than_the_retention(settings):
    settings.WEBHOOK_EVENT_RETENTION_DAYS = 90
    received("evt_100_days", WebhookEventState.PROCESSED, 100)
    received("evt_80_days", WebhookEventState.PROCESSED, 80)

    prune("--prune-before")

    assert stored()[0] == {"evt_80_days"}


def test_a_date_is_a_cutoff_too_and_many_batches_add_up(monkeypatch):
    monkeypatch.setattr("apps.payments.webhooks.retention.BATCH", 7)
    for n in range(30):
        received(f"evt_{n}", WebhookEventState.PROCESSED, 400)

    output = prune("--prune-before", (timezone.now() - timedelta(days=100)).strftime("%Y-%m-%d"))

    assert stored() == (set(), set())
    assert "Pruned 30 event(s)" in output


@pytest.mark.parametrize("cutoff", ["2d", "0d", (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%d")])
def test_nothing_stripe_may_still_deliver_again_is_pruned(cutoff):
    received("evt_yesterday", WebhookEventState.PROCESSED, 1)

    with pytest.raises(CommandError, match="may still be delivered again by Stripe"):
        prune("--prune-before", cutoff)
    assert stored()[0] == {"evt_yesterday"}
    # Still there, a redelivery is recognised as one and not processed again.
    assert webhook_receive(event=event("product.updated", {"id": "prod_x"}, event_id="evt_yesterday")) is False


@pytest.mark.parametrize("cutoff", ["yesterday", "30", "2026-13-01"])
def test_a_cutoff_it_cannot_read_is_refused_clearly(cutoff):
    received("evt_old", WebhookEventState.PROCESSED, 400)

    with pytest.raises(CommandError, match="give a date"):
        prune("--prune-before", cutoff)
    assert stored()[0] == {"evt_old"}


def test_the_nightly_task_prunes_by_the_retention(settings):
    settings.WEBHOOK_EVENT_RETENTION_DAYS = 30
    received("evt_old", WebhookEventState.PROCESSED, 31)
    received("evt_new", WebhookEventState.PROCESSED, 29)

    assert webhook_events_prune_task() == 1
    assert stored()[0] == {"evt_new"}
    assert "webhook-events-prune" in settings.CELERY_BEAT_SCHEDULE


@pytest.mark.integration  # a fresh interpreter
@pytest.mark.parametrize(("days", "starts"), [("1", False), ("2", False), ("3", True), ("0", True)])
def test_a_retention_shorter_than_stripes_redelivery_stops_the_start(days, starts):
    result = _boot("config.settings.test", "print('started')", WEBHOOK_EVENT_RETENTION_DAYS=days)

    assert ("started" in result.stdout) is starts, result.stderr
    if not starts:
        assert "WEBHOOK_EVENT_RETENTION_DAYS" in result.stderr
