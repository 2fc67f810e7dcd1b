from django.contrib import admin, messages

from apps.payments import mirror
from apps.payments.models import MirrorRecord


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
        return (record.last_error[:80] + "…") if len(record.last_error) > 80 else record.last_error

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Mirror again")
    def mirror_again(self, request, queryset) -> None:
        records = list(queryset)
        for record in records:
            mirror.mirror_again(record=record)
        self.message_user(request, f"Queued {len(records)} object(s) for mirroring.", messages.SUCCESS)
