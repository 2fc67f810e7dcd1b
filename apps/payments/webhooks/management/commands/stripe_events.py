"""List received Stripe events, and replay failed (or any) ones: `stripe_events --failed --replay`;
delete settled old ones: `stripe_events --prune-before` (by default what is older than the retention)."""

import re
from datetime import datetime, time, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.payments.webhooks.drain import replay
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from apps.payments.webhooks.processing import process_event
from apps.payments.webhooks.retention import PruneRefused, default_cutoff, prunable, prune
from apps.payments.webhooks.selectors import webhook_events_before_count
from config.progress import Progress

DEFAULT = "retention"


def _cutoff(value: str) -> datetime:
    """`retention` (WEBHOOK_EVENT_RETENTION_DAYS), `30d`, or a date (`2026-08-01`, midnight local time)."""
    if value == DEFAULT:
        if not settings.WEBHOOK_EVENT_RETENTION_DAYS:
            raise CommandError("WEBHOOK_EVENT_RETENTION_DAYS is 0 (keep every event): give a date or a number of days")
        return default_cutoff()
    if days := re.fullmatch(r"(\d+)d", value):
        return timezone.now() - timedelta(days=int(days[1]))
    try:
        return timezone.make_aware(datetime.combine(datetime.strptime(value, "%Y-%m-%d").date(), time.min))
    except ValueError:
        raise CommandError(f"--prune-before {value!r}: give a date (2026-08-01) or a number of days (90d)") from None


class Command(BaseCommand):
    help = "List Stripe events received by /stripe/webhook/; with --replay, process the listed ones again."

    def add_arguments(self, parser):
        parser.add_argument("--failed", action="store_true", help="only events parked as failed")
        parser.add_argument("--state", choices=WebhookEventState.values)
        parser.add_argument("--type", help="an event type, e.g. product.updated")
        parser.add_argument("--limit", type=int, default=50)
        parser.add_argument("--replay", action="store_true", help="process the listed events again")
        parser.add_argument("--queue", action="store_true", help="with --replay: hand them to the workers")
        parser.add_argument(
            "--prune-before",
            nargs="?",
            const=DEFAULT,
            metavar="DATE|Nd",
            help="delete processed, ignored and refused events received before this (a date, or days ago; "
            "alone: WEBHOOK_EVENT_RETENTION_DAYS ago); parked and waiting events are kept",
        )

    def handle(self, *args, **options):
        if options["prune_before"]:
            self._prune(_cutoff(options["prune_before"]))
            return
        events = WebhookEvent.objects.order_by("received_at")
        if options["failed"]:
            events = events.filter(state=WebhookEventState.FAILED)
        if options["state"]:
            events = events.filter(state=options["state"])
        if options["type"]:
            events = events.filter(type=options["type"])
        events = list(events[: options["limit"]])
        for event in events:
            self.stdout.write(
                f"{event.stripe_id}  {event.type:<32} {event.state:<9} deliveries={event.deliveries} "
                f"attempts={event.attempts}  {event.last_error or event.outcome}"
            )
        if not options["replay"]:
            self.stdout.write(f"{len(events)} event(s).")
            return
        replayed = failed = 0
        for event in events:
            if options["queue"]:
                replay(webhook_event=event)
                replayed += 1
                continue
            WebhookEvent.objects.filter(pk=event.pk).update(state=WebhookEventState.RECEIVED, attempts=0, retry_at=None)
            try:
                outcome = process_event(webhook_event_id=event.pk)
                replayed += 1
                self.stdout.write(f"  {event.stripe_id}: {outcome}")
            except Exception as error:  # noqa: BLE001 - reported, and the event stays parked
                failed += 1
                WebhookEvent.objects.filter(pk=event.pk).update(
                    state=WebhookEventState.FAILED, last_error=f"{error.__class__.__name__}: {error}"
                )
                self.stdout.write(self.style.ERROR(f"  {event.stripe_id}: {error}"))
        verb = "Queued" if options["queue"] else "Replayed"
        self.stdout.write(f"{verb} {replayed} event(s); {failed} failed again.")

    def _prune(self, before: datetime) -> None:
        total = prunable(before).count()
        progress = Progress(total, "pruning events", stream=self.stderr)
        try:
            pruned = prune(before=before, on_batch=progress.advance)
        except PruneRefused as refusal:
            raise CommandError(str(refusal)) from None
        finally:
            progress.close()
        kept = webhook_events_before_count(before=before)  # what pruning left
        self.stdout.write(
            f"Pruned {pruned} event(s) received before {timezone.localtime(before):%Y-%m-%d %H:%M}; "
            f"kept {kept} older one(s) still waiting or parked."
        )
