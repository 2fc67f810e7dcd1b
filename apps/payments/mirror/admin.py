"""The mirror in the admin: where each object stands with Stripe, and each reconcile run."""

from django.contrib import admin, messages
from django.utils.text import Truncator

from apps.payments.mirror.models import MirrorRecord, ReconcileRun
from apps.payments.mirror.outbox import mirror_again
from config.admin_conventions import RecordAdmin


@admin.register(MirrorRecord)
class MirrorRecordAdmin(admin.ModelAdmin):
    """Where each user, product and price stands with Stripe; failed rows can be sent again."""

    list_display = (
        "app_ref",
        "state",
        "version",
        "synced_version",
        "attempts",
        "stripe_id",
        "synced_at",
        "short_error",
    )
    list_filter = ("state", "kind", "deleted", ("updated_at", admin.DateFieldListFilter))
    search_fields = ("stripe_id", "=object_id", "last_error")
    actions = ("mirror_again",)
    readonly_fields = [field.name for field in MirrorRecord._meta.fields]

    @admin.display(description="last error")
    def short_error(self, record: MirrorRecord) -> str:
        return Truncator(record.last_error).chars(80)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Mirror again", permissions=["change"])
    def mirror_again(self, request, queryset) -> None:
        records = list(queryset)
        for record in records:
            mirror_again(record=record)
        self.message_user(request, f"Queued {len(records)} object(s) for mirroring.", messages.SUCCESS)


@admin.register(ReconcileRun)
class ReconcileRunAdmin(RecordAdmin):
    """Each comparison of the mirrored catalog and users with Stripe (`stripe_reconcile`): how far it got and
    what differed. A stopped run shows its phase; running the command again continues it."""

    list_display = ("started_at", "kind", "repair", "phase", "local", "stripe", "missing", "extra", "differing")
    list_filter = ("kind", "phase", ("started_at", admin.DateFieldListFilter))
    readonly_fields = (
        "kind",
        "repair",
        "phase",
        "local",
        "stripe",
        "missing",
        "extra",
        "differing",
        "repaired",
        "examples",
        "stripe_cursor",
        "local_cursor",
        "started_at",
        "updated_at",
        "finished_at",
    )
    exclude = ("claims",)
