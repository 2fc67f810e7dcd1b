"""Stripe's events in the admin: processed, ignored, or parked with their traceback, and processed again."""

import json

from django.contrib import admin, messages
from djstripe import models as djstripe_models

from apps.payments.webhooks.drain import replay
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from config.admin_conventions import GrowingTableAdmin, recent_values_filter


@admin.register(WebhookEvent)
class WebhookEventAdmin(GrowingTableAdmin):
    """Every Stripe event received: processed, ignored, or parked as failed with its traceback."""

    list_display = (
        "stripe_id",
        "type",
        "state",
        "deliveries",
        "attempts",
        "received_at",
        "retry_at",
        "processed_at",
        "outcome",
    )
    list_filter = ("state", recent_values_filter("type", "type"), ("received_at", admin.DateFieldListFilter))
    search_fields = ("=stripe_id", "type", "last_error")
    actions = ("process_again",)
    readonly_fields = [field.name for field in WebhookEvent._meta.fields] + ["payload"]

    def changelist_view(self, request, extra_context=None):
        parked = WebhookEvent.objects.filter(state=WebhookEventState.FAILED).count()
        if parked:
            self.message_user(
                request,
                f"{parked} event(s) failed for three days and are parked: what Stripe told us in them is not "
                "applied. Filter by state 'failed (parked)', read the error, fix it, then 'Process again'.",
                messages.ERROR,
            )
        return super().changelist_view(request, extra_context)

    @admin.display(description="event as received")
    def payload(self, webhook_event: WebhookEvent) -> str:
        data = djstripe_models.Event.objects.filter(id=webhook_event.stripe_id).values_list("stripe_data", flat=True)
        return json.dumps(data.first(), indent=2)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Process again", permissions=["change"])
    def process_again(self, request, queryset) -> None:
        events = list(queryset)
        for webhook_event in events:
            replay(webhook_event=webhook_event)
        self.message_user(request, f"Queued {len(events)} event(s) for processing.", messages.SUCCESS)
