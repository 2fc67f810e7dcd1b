import math
from functools import wraps

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm, UserChangeForm
from django.http import HttpResponse

from apps.users.models import User, normalize_email
from apps.users.services import user_create, user_delete, user_update
from apps.users.throttles import login_refused_for, login_succeeded


class UserCreationForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = ("email", "password", "name", "is_active", "is_staff", "is_superuser", "groups", "user_permissions")

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Saves and deletes through `users.services`, so operators' edits send the same signals as the API."""

    form = UserEditForm
    add_form = UserCreationForm
    ordering = ("-date_joined",)
    list_display = ("email", "name", "email_verified", "is_staff", "is_active", "date_joined", "last_login")
    list_filter = (
        "email_verified",
        "is_staff",
        "is_superuser",
        "is_active",
        ("date_joined", admin.DateFieldListFilter),
    )
    search_fields = ("email", "name")
    # Only the link mailed to the address verifies it: not even an operator's click.
    readonly_fields = ("email_verified", "date_joined", "last_login", "updated_at")
    fieldsets = (
        (None, {"fields": ("email", "email_verified", "password")}),
        ("Profile", {"fields": ("name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("date_joined", "last_login", "updated_at")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "name", "password1", "password2")}),)

    PERMISSION_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")

    def get_readonly_fields(self, request, obj=None):
        # Who may do what is a superuser's decision: `change_user` alone must not grant itself refunds.
        if request.user.is_superuser:
            return self.readonly_fields
        return (*self.readonly_fields, *self.PERMISSION_FIELDS)

    def has_change_permission(self, request, obj=None) -> bool:
        # Nor may it take over an operator's account (a new password or address) to act as them.
        if obj is not None and (obj.is_staff or obj.is_superuser) and not request.user.is_superuser:
            return obj.pk == request.user.pk and super().has_change_permission(request, obj)
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form: forms.ModelForm, change: bool) -> None:
        if not change:
            created = user_create(
                email=form.cleaned_data["email"],
                name=form.cleaned_data.get("name", ""),
                password=form.cleaned_data["password1"],
            )
            # The admin goes on with `obj` (log entry, redirect): make it the saved row.
            obj.pk, obj.password = created.pk, created.password
            obj._state.adding = False
            return
        profile_changes = {f: form.cleaned_data[f] for f in form.changed_data if f in ("email", "name")}
        stored = User.objects.get(pk=obj.pk)
        user_update(user=stored, data=profile_changes)
        # Permissions and flags are not mirrored anywhere; a plain save is all they need.
        other_fields = [f for f in form.changed_data if f not in ("email", "name", "groups", "user_permissions")]
        if other_fields:
            obj.save(update_fields=other_fields)

    def delete_model(self, request, obj) -> None:
        user_delete(user=obj)

    def delete_queryset(self, request, queryset) -> None:
        for user in queryset:
            user_delete(user=user)


def _throttled(login_view):
    """The admin's login under the API login's limits (per address, per account and address, per account):
    Django's own login form has none, and an operator's password is worth more than a customer's."""

    @wraps(login_view)
    def login(request, extra_context=None):
        if request.method == "POST":
            wait = login_refused_for(request)
            if wait is not None:
                return HttpResponse(
                    f"Too many login attempts. Try again in {wait:.0f} seconds.",
                    status=429,
                    headers={"Retry-After": str(math.ceil(wait))},
                    content_type="text/plain",
                )
        response = login_view(request, extra_context)
        # Only a login this request made, as the account it named: someone already signed in who posts a
        # wrong password for another account re-renders the form (200) and must not earn that account's trust.
        if request.method == "POST" and response.status_code == 302 and request.user.is_authenticated:
            login_succeeded(request, email=request.user.email)
        return response

    return login


admin.site.login = _throttled(admin.site.login)
