"""Compare Stripe with the local database and repair drift both ways (missing, extra, differing).

Safe to stop and run again: each run starts from what Stripe and the database hold then.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.payments.management.progress import Progress
from apps.payments.mirror.specs import SPECS
from apps.payments.models import MirrorKind
from apps.payments.services import reconcile

ORDER = (MirrorKind.PRODUCT, MirrorKind.PRICE, MirrorKind.USER)


class Command(BaseCommand):
    help = "Report (and unless --dry-run, repair) differences between Stripe and the local database."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="report only")
        parser.add_argument("--model", action="append", choices=[kind.value for kind in ORDER], help="repeatable")

    def handle(self, *args, **options):
        if not settings.STRIPE_MIRROR_ENABLED:
            raise CommandError("The mirror is off: set STRIPE_SECRET_KEY (and STRIPE_API_BASE for the emulator).")
        kinds = [kind for kind in ORDER if not options["model"] or kind.value in options["model"]]
        results = []
        try:
            for kind in kinds:
                total = SPECS[kind].model.objects.count()
                progress = Progress(total, f"{kind.label:<22}", stream=self.stderr)
                results.append(reconcile(kind, repair=not options["dry_run"], on_step=progress.advance))
                progress.close()
        except KeyboardInterrupt:
            self.stderr.write("\nInterrupted. Run again: reconciling starts from what is there now.")
            raise SystemExit(130) from None
        self.stdout.write(
            f"{'kind':<18}{'local':>7}{'stripe':>8}{'missing':>9}{'extra':>7}{'differing':>11}{'repaired':>10}"
        )
        for drift in results:
            self.stdout.write(
                f"{drift.kind:<18}{drift.local:>7}{drift.stripe:>8}{len(drift.missing):>9}{len(drift.extra):>7}"
                f"{len(drift.differing):>11}{drift.repaired:>10}"
            )
            for label, refs in (("missing", drift.missing), ("extra", drift.extra), ("differing", drift.differing)):
                for ref in refs[:20]:
                    self.stdout.write(f"  {label}: {ref}")
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was changed.")
