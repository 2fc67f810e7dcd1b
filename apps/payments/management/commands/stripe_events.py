"""List received Stripe events, and replay failed (or any) ones: `stripe_events --failed --replay`."""

from django.core.management.base import BaseCommand

from apps.payments import services
from apps.payments.models import WebhookEvent, WebhookEventState


class Command(BaseCommand):
    help = "List Stripe events received by /stripe/webhook/; with --replay, process the listed ones again."

    def add_arguments(self, parser):
        parser.add_argument("--failed", action="store_true", help="only events parked as failed")
        parser.add_argument("--state", choices=WebhookEventState.values)
        parser.add_argument("--type", help="an event type, e.g. product.updated")
        parser.add_argument("--limit", type=int, default=50)
        parser.add_argument("--replay", action="store_true", help="process the listed events again")
        parser.add_argument("--queue", action="store_true", help="with --replay: hand them to the workers")

    def handle(self, *args, **options):
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
                services.webhook_event_replay(webhook_event=event)
                replayed += 1
                continue
            WebhookEvent.objects.filter(pk=event.pk).update(state=WebhookEventState.RECEIVED, attempts=0, retry_at=None)
            try:
                outcome = services.webhook_event_process(webhook_event_id=event.pk)
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
