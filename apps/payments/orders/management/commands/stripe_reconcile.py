"""Compare Stripe with the local database and repair drift both ways (missing, extra, differing).

Reads Stripe a page at a time (memory stays flat however large the catalog) and checkpoints each page:
stopped, it continues from its last page when run again (`--restart` starts afresh).
With `--money`, compare the books instead (paid orders, payments and refunds against Stripe's charges,
refunds and balance transactions) over `--since`..`--until`, and report: money is never repaired blindly.
"""

from argparse import ArgumentTypeError
from datetime import datetime, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.payments.mirror.models import MirrorKind
from apps.payments.mirror.reconcile import ReconcileBusy, reconcile
from apps.payments.mirror.selectors import mirrored_object_count
from apps.payments.orders.reconcile_money import reconcile_money
from config.days import day_end, day_start
from config.progress import Progress

ORDER = (MirrorKind.PRODUCT, MirrorKind.PRICE, MirrorKind.USER)


class Command(BaseCommand):
    help = "Report (and unless --dry-run, repair) differences between Stripe and the local database."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="report only")
        parser.add_argument("--model", action="append", choices=[kind.value for kind in ORDER], help="repeatable")
        parser.add_argument("--restart", action="store_true", help="start afresh instead of continuing a stopped run")
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
        self._catalog(options)

    def _catalog(self, options) -> None:
        kinds = [kind for kind in ORDER if not options["model"] or kind.value in options["model"]]
        results = []
        try:
            for kind in kinds:
                # Stripe's objects, then the local ones: about twice the local count.
                total = 2 * mirrored_object_count(kind=kind)
                progress = Progress(total, f"{kind.label:<22}", stream=self.stderr)
                drift = reconcile(
                    kind, repair=not options["dry_run"], restart=options["restart"], on_step=progress.reach
                )
                progress.close()
                if drift.resumed:
                    self.stderr.write(f"{kind}: continued the run that was stopped.")
                results.append(drift)
        except ReconcileBusy as busy:
            raise CommandError(str(busy)) from None
        except KeyboardInterrupt:
            self.stderr.write("\nInterrupted. Run again to continue from the last page read (--restart: afresh).")
            raise SystemExit(130) from None
        self.stdout.write(
            f"{'kind':<18}{'local':>7}{'stripe':>8}{'missing':>9}{'extra':>7}{'differing':>11}{'repaired':>10}"
            f"{'not repaired':>14}"
        )
        for drift in results:
            self.stdout.write(
                f"{drift.kind:<18}{drift.local:>7}{drift.stripe:>8}{drift.missing_count:>9}{drift.extra_count:>7}"
                f"{drift.differing_count:>11}{drift.repaired:>10}{drift.unrepaired_count:>14}"
            )
            examples = (
                ("missing", drift.missing),
                ("extra", drift.extra),
                ("differing", drift.differing),
                ("not repaired", drift.unrepaired),  # each with what its push came to
            )
            for label, refs in examples:
                for ref in refs[:20]:  # the counts are whole; a few examples each
                    self.stdout.write(f"  {label}: {ref}")
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was changed.")

    def _money(self, since, until) -> None:
        today = timezone.localdate()
        since = since or today - timedelta(days=settings.BOOKS_CHECK_DAYS)
        until = until or today
        if since > until:
            raise CommandError("--since is after --until.")
        check = reconcile_money(since=day_start(since), until=day_end(until))
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
