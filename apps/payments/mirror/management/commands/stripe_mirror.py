"""Mirror every user, product and price to Stripe: the backfill for an existing database.

Resumable: what is already in Stripe at its latest version is skipped, so after
Ctrl-C a second run continues where the first stopped.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.catalog.models import Price, Product
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.mirror.outbox import enqueue, mirror_again, mirror_record_change
from apps.payments.mirror.outcomes import SyncOutcome
from apps.payments.mirror.sync import mirror_sync
from apps.users.models import User
from config.progress import Progress

# Products before their prices (a price needs its product), customers last.
ORDER = (MirrorKind.PRODUCT, MirrorKind.PRICE, MirrorKind.USER)
MODELS = {MirrorKind.PRODUCT: Product, MirrorKind.PRICE: Price, MirrorKind.USER: User}
# Which total each outcome counts in: only what Stripe now holds is "mirrored".
TOTALS = {
    SyncOutcome.SYNCED: "synced",
    SyncOutcome.FAILED: "failed",
    SyncOutcome.CONFLICT: "failed",
    SyncOutcome.WAITING: "waiting",
    SyncOutcome.LEASE_LOST: "waiting",  # another task holds the row now and finishes it
    SyncOutcome.NOTHING_TO_DO: "waiting",
}


class Command(BaseCommand):
    help = "Mirror local users, products and prices to Stripe (resumable; --force pushes everything again)."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--all", action="store_true", help="users, products and prices")
        target.add_argument("--model", action="append", choices=[kind.value for kind in ORDER], help="repeatable")
        parser.add_argument("--force", action="store_true", help="push objects again even if Stripe has them")
        parser.add_argument("--queue", action="store_true", help="queue Celery tasks instead of mirroring here")

    def handle(self, *args, **options):
        if not settings.STRIPE_MIRROR_ENABLED:
            raise CommandError("The mirror is off: set STRIPE_SECRET_KEY (and STRIPE_API_BASE for the emulator).")
        kinds = [kind for kind in ORDER if options["all"] or kind.value in (options["model"] or [])]
        totals = {"synced": 0, "failed": 0, "waiting": 0, "already": 0, "queued": 0}
        # Rows first, all of them: a product's creation then carries its first price along.
        for kind in kinds:
            self._register(kind, force=options["force"], queue=options["queue"])
        if MirrorKind.PRODUCT in kinds and MirrorKind.PRICE not in kinds:
            self._register(MirrorKind.PRICE, force=False, queue=False)
        try:
            for kind in kinds:
                self._mirror_kind(kind, options["queue"], totals)
        except KeyboardInterrupt:
            self.stderr.write("\nInterrupted. Run the same command again to continue where this stopped.")
            self._summary(totals)
            raise SystemExit(130) from None
        self._summary(totals)

    def _register(self, kind: MirrorKind, *, force: bool, queue: bool) -> None:
        known = set(MirrorRecord.objects.filter(kind=kind).values_list("object_id", flat=True))
        for object_id in MODELS[kind].objects.order_by("pk").values_list("pk", flat=True):
            if force or object_id not in known:
                mirror_record_change(kind=kind, object_id=object_id, queue=queue)

    def _mirror_kind(self, kind: MirrorKind, queue: bool, totals: dict) -> None:
        records = MirrorRecord.objects.filter(kind=kind).order_by("object_id")
        progress = Progress(records.count(), f"{kind.label:<22}", stream=self.stderr)
        for record_id in records.values_list("pk", flat=True):
            record = MirrorRecord.objects.get(pk=record_id)
            if record.state == MirrorState.SYNCED and record.synced_version >= record.version:
                totals["already"] += 1
            elif queue:
                enqueue(record_id)
                totals["queued"] += 1
            else:
                if record.state == MirrorState.FAILED:
                    mirror_again(record=record, queue=False)
                outcome = mirror_sync(record_id=record_id)
                totals[TOTALS[outcome]] += 1
            progress.advance()
        progress.close()

    def _summary(self, totals: dict) -> None:
        summary = "Mirrored {synced}, already in Stripe {already}, queued {queued}, waiting {waiting}, failed {failed}."
        self.stdout.write(summary.format(**totals))
        failures = MirrorRecord.objects.filter(state=MirrorState.FAILED).order_by("-updated_at")[:10]
        for record in failures:
            self.stdout.write(f"  failed {record.app_ref}: {record.last_error}")
