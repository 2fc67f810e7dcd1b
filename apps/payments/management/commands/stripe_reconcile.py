"""Compare Stripe with the local database and repair drift both ways (missing, extra, differing).

Safe to stop and run again: each run starts from what Stripe and the database hold then.
With `--money`, compare the books instead (paid orders, payments and refunds against Stripe's charges,
refunds and balance transactions) over `--since`..`--until`, and report: money is never repaired blindly.
"""

from argparse import ArgumentTypeError
from datetime import datetime, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.payments.management.progress import Progress
from apps.payments.mirror.specs import SPECS
from apps.payments.models import MirrorKind
from apps.payments.services import books_check, reconcile
from config.days import day_end, day_start

ORDER = (MirrorKind.PRODUCT, MirrorKind.PRICE, MirrorKind.USER)


class Command(BaseCommand):
    help = "Report (and unless --dry-run, repair) differences between Stripe and the local database."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="report only")
        parser.add_argument("--model", action="append", choices=[kind.value for kind in ORDER], help="repeatable")
        parser.add_argument("--money", action="store_true", help="compare the books with Stripe's instead")
        parser.add_argument("--since", type=_day, help="with --money: first day, YYYY-MM-DD (default: 3 days ago)")
        parser.add_argument("--until", type=_day, help="with --money: last day, YYYY-MM-DD (default: today)")

    def handle(self, *args, **options):
        if not settings.STRIPE_MIRROR_ENABLED:
            raise CommandError("The mirror is off: set STRIPE_SECRET_KEY (and STRIPE_API_BASE for the emulator).")
        if options["money"]:
            self._money(options["since"], options["until"])
            return
        if options["since"] or options["until"]:
            raise CommandError("--since and --until go with --money.")
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

    def _money(self, since, until) -> None:
        today = timezone.localdate()
        since = since or today - timedelta(days=settings.BOOKS_CHECK_DAYS)
        until = until or today
        if since > until:
            raise CommandError("--since is after --until.")
        check = books_check(since=day_start(since), until=day_end(until))
        self.stdout.write(
            f"Books {since}..{until}: {check.orders_checked} paid orders, {check.charges_checked} charges, "
            f"{check.refunds_checked} refunds compared with Stripe."
        )
        for drift in check.drifts.all()[:50]:
            self.stdout.write(f"  {drift.kind}: {drift.detail}")
        if check.error:
            raise CommandError(f"The check stopped early: {check.error}")
        if check.drift_count:
            raise CommandError(f"{check.drift_count} difference(s): see them in the admin (Books checks).")
        self.stdout.write("Clean: our books and Stripe's agree over the range.")


def _day(value: str):
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError as error:
        raise ArgumentTypeError(f"{value!r} is not a day (YYYY-MM-DD)") from error
