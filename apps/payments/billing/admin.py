"""Subscriptions in the admin: dj-stripe's rows, read here; changed through the API or Stripe's portal, whose
events come back. And the Checkout Sessions that sold them."""

from django.contrib import admin
from djstripe import models as djstripe_models

from apps.catalog.models import Product
from apps.payments.billing.models import SubscriptionCheckout
from apps.payments.mirror.models import MirrorKind, MirrorRecord
from config.admin_conventions import RecordAdmin
from config.days import moment


class _StripeStatusFilter(admin.SimpleListFilter):
    """A status Stripe gave (kept in dj-stripe's `stripe_data`)."""

    title = "status"
    parameter_name = "status"
    statuses: tuple[str, ...] = ()

    def lookups(self, request, model_admin):
        return [(status, status) for status in self.statuses]

    def queryset(self, request, queryset):
        return queryset.filter(stripe_data__status=self.value()) if self.value() else queryset


class SubscriptionStatusFilter(_StripeStatusFilter):
    statuses = ("trialing", "active", "past_due", "unpaid", "incomplete", "canceled")


class InvoiceStatusFilter(_StripeStatusFilter):
    statuses = ("draft", "open", "paid", "uncollectible", "void")


class PlanFilter(admin.SimpleListFilter):
    """The catalog product a subscription's plan sells."""

    title = "plan"
    parameter_name = "product"

    def lookups(self, request, model_admin):
        mirrored = MirrorRecord.objects.filter(kind=MirrorKind.PRODUCT).exclude(stripe_id="")
        names = dict(Product.objects.filter(pk__in=mirrored.values("object_id")).values_list("pk", "name"))
        return [
            (stripe_id, names.get(object_id, stripe_id))
            for object_id, stripe_id in mirrored.values_list("object_id", "stripe_id")
        ]

    def queryset(self, request, queryset):
        return queryset.filter(items__price__product__id=self.value()).distinct() if self.value() else queryset


class InvoicePlanFilter(PlanFilter):
    """The catalog product an invoice bills (any of its lines)."""

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        billed = [{"pricing": {"price_details": {"product": self.value()}}}]
        return queryset.filter(stripe_data__lines__data__contains=billed)


for _djstripe_model in (djstripe_models.Subscription, djstripe_models.Invoice):
    if admin.site.is_registered(_djstripe_model):
        admin.site.unregister(_djstripe_model)


@admin.register(djstripe_models.Subscription)
class SubscriptionAdmin(RecordAdmin):
    """Subscriptions as Stripe last told them. Read-only: cancel or change one through the API, or
    Stripe's dashboard, whose events come back here."""

    list_display = ("id", "customer_email", "user", "status", "plans", "period_end", "cancel_at_period_end", "created")
    list_filter = (SubscriptionStatusFilter, PlanFilter)
    search_fields = ("=id", "customer__id", "customer__subscriber__email")
    list_select_related = ("customer__subscriber",)
    fields = ("id", "customer", "stripe_data", "created")
    readonly_fields = fields

    @admin.display(description="customer")
    def customer_email(self, sub) -> str:
        return sub.customer.stripe_data.get("email") or sub.customer.id

    @admin.display(description="user")
    def user(self, sub):
        return sub.customer.subscriber or "-"

    @admin.display(description="status")
    def status(self, sub) -> str:
        return sub.stripe_data.get("status", "")

    @admin.display(description="plans")
    def plans(self, sub) -> str:
        return ", ".join(
            f"{item['price']['unit_amount']} {item['price']['currency']}/{item['price']['recurring']['interval']}"
            for item in sub.stripe_data["items"]["data"]
        )

    @admin.display(description="period ends")
    def period_end(self, sub):
        items = sub.stripe_data["items"]["data"]
        end = items[0].get("current_period_end") if items else None
        return moment(end) or "-"

    @admin.display(description="cancels at period end", boolean=True)
    def cancel_at_period_end(self, sub) -> bool:
        return bool(sub.stripe_data.get("cancel_at_period_end"))


@admin.register(djstripe_models.Invoice)
class InvoiceAdmin(RecordAdmin):
    list_display = (
        "id",
        "number",
        "customer",
        "status",
        "billing_reason",
        "amount_due",
        "amount_paid",
        "attempts",
        "created",
    )
    list_filter = (InvoiceStatusFilter, InvoicePlanFilter)
    search_fields = ("=id", "customer__id", "subscription__id")
    list_select_related = ("customer",)
    fields = ("id", "customer", "subscription", "stripe_data", "created")
    readonly_fields = fields

    @admin.display(description="number")
    def number(self, invoice) -> str:
        return invoice.stripe_data.get("number") or "-"

    @admin.display(description="status")
    def status(self, invoice) -> str:
        return invoice.stripe_data.get("status", "")

    @admin.display(description="reason")
    def billing_reason(self, invoice) -> str:
        return invoice.stripe_data.get("billing_reason") or ""

    @admin.display(description="due")
    def amount_due(self, invoice) -> str:
        return f"{invoice.stripe_data.get('amount_due')} {invoice.stripe_data.get('currency')}"

    @admin.display(description="paid")
    def amount_paid(self, invoice) -> str:
        return f"{invoice.stripe_data.get('amount_paid')} {invoice.stripe_data.get('currency')}"

    @admin.display(description="attempts")
    def attempts(self, invoice) -> int:
        return invoice.stripe_data.get("attempt_count", 0)


@admin.register(SubscriptionCheckout)
class SubscriptionCheckoutAdmin(RecordAdmin):
    list_display = ("id", "user", "status", "currency", "trial_days", "subscription_id", "created_at")
    list_filter = ("status", ("created_at", admin.DateFieldListFilter))
    search_fields = ("=id", "user__email", "checkout_session_id", "subscription_id")
    list_select_related = ("user",)
