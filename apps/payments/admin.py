from django.contrib import admin, messages
from djstripe import models as djstripe_models

from apps.payments import mirror, webhook_handlers
from apps.payments.models import MirrorRecord, WebhookEvent


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


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    """Every Stripe event received: processed, ignored, or parked as failed with its traceback."""

    list_display = ("stripe_id", "type", "state", "deliveries", "attempts", "received_at", "processed_at", "outcome")
    list_filter = ("state", "type", ("received_at", admin.DateFieldListFilter))
    search_fields = ("=stripe_id", "type", "last_error")
    actions = ("process_again",)
    readonly_fields = [field.name for field in WebhookEvent._meta.fields] + ["payload"]

    @admin.display(description="event as received")
    def payload(self, webhook_event: WebhookEvent) -> str:
        import json

        data = djstripe_models.Event.objects.filter(id=webhook_event.stripe_id).values_list("stripe_data", flat=True)
        return json.dumps(data.first(), indent=2)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Process again")
    def process_again(self, request, queryset) -> None:
        events = list(queryset)
        for webhook_event in events:
            webhook_handlers.replay(webhook_event=webhook_event)
        self.message_user(request, f"Queued {len(events)} event(s) for processing.", messages.SUCCESS)
