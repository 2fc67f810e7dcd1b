from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.text import Truncator

from apps.mail import services
from apps.mail.models import MessageState, OutgoingMessage
from config.admin_conventions import RecordAdmin


@admin.register(OutgoingMessage)
class OutgoingMessageAdmin(RecordAdmin):
    """The outbox: every message, its state and the mail server's last word; failed ones can be sent again."""

    list_display = ("subject", "recipient", "kind", "state", "attempts", "created_at", "sent_at", "short_error")
    list_filter = ("state", "kind", ("created_at", admin.DateFieldListFilter))
    search_fields = ("recipient", "idempotency_key", "subject", "last_error")
    date_hierarchy = "created_at"
    actions = ("send_again",)
    fields = (
        "idempotency_key",
        "kind",
        "recipient",
        "subject",
        "state",
        "attempts",
        "last_error",
        "next_attempt_at",
        "created_at",
        "sent_at",
        "message_id",
        "html_preview",
        "body_text",
    )
    readonly_fields = fields

    @admin.display(description="last error")
    def short_error(self, message: OutgoingMessage) -> str:
        return Truncator(message.last_error).chars(80)

    @admin.display(description="as the recipient sees it")
    def html_preview(self, message: OutgoingMessage):
        # A sandboxed frame: the message's own markup never runs or styles the admin page.
        return format_html(
            '<iframe sandbox srcdoc="{}" style="width:100%;max-width:640px;height:480px;border:1px solid #ccc;">'
            "</iframe>",
            message.body_html,
        )

    def has_send_permission(self, request) -> bool:
        # Rows are read-only in the admin; sending again is what the change permission grants.
        return request.user.has_perm("mail.change_outgoingmessage")

    @admin.action(description="Send again", permissions=["send"])
    def send_again(self, request, queryset) -> None:
        failed = list(queryset.filter(state=MessageState.FAILED))
        again = sum(services.message_send_again(message=message) for message in failed)
        skipped = queryset.count() - again
        if again:
            self.message_user(request, f"Queued {again} message(s) to be sent again.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} message(s) were not failed and were left alone.", messages.WARNING)
