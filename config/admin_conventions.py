"""What the admin pages of every app share."""

from django.contrib import admin


class RecordAdmin(admin.ModelAdmin):
    """Rows that record what happened (Stripe's word, a message sent): operators read them and act through
    actions; no form adds, changes or removes one."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
