"""The outbox from a shell: `mail_outbox` counts, `--failed` lists, `--send-again` requeues what failed."""

from django.core.management.base import BaseCommand
from django.db.models import Count

from apps.mail import services
from apps.mail.models import MessageKind, MessageState, OutgoingMessage


class Command(BaseCommand):
    help = "Count outgoing messages by state; list some (--failed, --state, --kind); --send-again requeues failed ones."

    def add_arguments(self, parser):
        parser.add_argument("--failed", action="store_true", help="only messages that failed")
        parser.add_argument("--state", choices=MessageState.values)
        parser.add_argument("--kind", choices=MessageKind.values)
        parser.add_argument("--limit", type=int, default=50)
        parser.add_argument("--send-again", action="store_true", help="queue the listed failed messages again")

    def handle(self, *args, **options):
        counts = dict(OutgoingMessage.objects.values_list("state").annotate(count=Count("id")))
        self.stdout.write("  ".join(f"{state}={counts.get(state, 0)}" for state in MessageState.values))
        messages = OutgoingMessage.objects.order_by("created_at", "id")
        state = MessageState.FAILED if options["failed"] else options["state"]
        if not (state or options["kind"] or options["send_again"]):
            return
        if state:
            messages = messages.filter(state=state)
        if options["kind"]:
            messages = messages.filter(kind=options["kind"])
        messages = list(messages[: options["limit"]])
        for message in messages:
            self.stdout.write(
                f"{message.idempotency_key:<32} {message.recipient:<32} {message.state:<8} "
                f"attempts={message.attempts}  {message.last_error}"
            )
        if options["send_again"]:
            again = sum(services.message_send_again(message=message) for message in messages)
            self.stdout.write(f"Queued {again} failed message(s) to be sent again.")
