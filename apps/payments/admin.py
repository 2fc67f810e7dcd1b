from functools import wraps

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from djstripe import models as djstripe_models
from djstripe.admin.actions import CustomActionMixin

from apps.catalog.models import Product
from apps.payments import services
from apps.payments.models import (
    BooksCheck,
    BooksDrift,
    MirrorKind,
    MirrorRecord,
    Order,
    OrderLine,
    OrderRefund,
    OrderStatus,
    OrderTransition,
    Payment,
    ReconcileRun,
    SubscriptionCheckout,
    WebhookEvent,
    WebhookEventState,
)
from config.admin_conventions import RecordAdmin
from config.days import moment
from config.errors import DomainError


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
            services.mirror_again(record=record)
        self.message_user(request, f"Queued {len(records)} object(s) for mirroring.", messages.SUCCESS)


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
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
    list_filter = ("state", "type", ("received_at", admin.DateFieldListFilter))
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
        import json

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
            services.webhook_event_replay(webhook_event=webhook_event)
        self.message_user(request, f"Queued {len(events)} event(s) for processing.", messages.SUCCESS)


class RecordInline(admin.TabularInline):
    """Rows written by the system, shown inside their parent: read here, never added or removed."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        # Part of their parent (an order's lines, transitions, refunds): whoever may see the parent sees them,
        # without a permission of their own that no operator's group would think of granting.
        return self.admin_site._registry[self.parent_model].has_view_permission(request, obj)


class OrderLineInline(RecordInline):
    model = OrderLine
    fields = ("product_name", "price", "unit_amount", "quantity", "amount")
    readonly_fields = fields


class OrderTransitionInline(RecordInline):
    model = OrderTransition
    fields = ("created_at", "from_status", "to_status", "cause")
    readonly_fields = fields


class OrderRefundInline(RecordInline):
    model = OrderRefund
    fields = ("created_at", "stripe_refund_id", "amount", "reason", "created_by")
    readonly_fields = fields


def _card(payment: Payment) -> str:
    return f"{payment.card_brand} {payment.card_last4}".strip() or "-"


class PaymentInline(RecordInline):
    model = Payment
    fields = ("created_at", "payment_intent_id", "status", "amount", "amount_refunded", "card", "decline_code")
    readonly_fields = fields
    show_change_link = True

    @admin.display(description="card")
    def card(self, payment: Payment) -> str:
        return _card(payment)


def _dashboard_link(path: str, stripe_id: str) -> str:
    """A link to the object in Stripe's dashboard, in the mode (live or test) of this installation's key."""
    if not stripe_id:
        return "-"
    mode = "" if settings.STRIPE_LIVE_MODE else "test/"
    return format_html(
        '<a href="https://dashboard.stripe.com/{}{}/{}" target="_blank">{}</a>', mode, path, stripe_id, stripe_id
    )


class NeedsReviewFilter(admin.SimpleListFilter):
    """Orders where Stripe took another amount or currency than the order's total: an operator decides."""

    title = "needs review"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return (("yes", "Stripe took another amount"),)

    def queryset(self, request, queryset):
        return queryset.filter(status=OrderStatus.REVIEW) if self.value() == "yes" else queryset


REFUNDABLE_STATUSES = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REVIEW)


class OrderRefundForm(forms.Form):
    """How much of an order goes back, in minor units; never more than what Stripe took and has not returned."""

    reason = forms.ChoiceField(
        choices=(
            ("requested_by_customer", "requested by the customer"),
            ("duplicate", "duplicate"),
            ("fraudulent", "fraudulent"),
        )
    )

    def __init__(self, *args, remaining: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields = {
            "amount": forms.IntegerField(
                min_value=1,
                max_value=remaining,
                initial=remaining,
                help_text="In the currency's minor unit (1999 is 19.99 EUR; 500 is 500 JPY).",
            ),
            **self.fields,
        }


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    """Orders with their lines, audit trail and refunds; operators refund and cancel through the same services."""

    list_display = ("id", "status", "user", "email", "amount", "charged", "refunded", "created_at", "paid_at")
    list_filter = (
        NeedsReviewFilter,
        "status",
        "currency",
        ("created_at", admin.DateFieldListFilter),
        ("paid_at", admin.DateFieldListFilter),
    )
    search_fields = ("=id", "email", "user__email", "checkout_session_id", "payment_intent_id")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    inlines = (OrderLineInline, PaymentInline, OrderTransitionInline, OrderRefundInline)
    actions = ("refund_in_full", "cancel", "accept_payment")
    readonly_fields = (
        "user",
        "email",
        "status",
        "currency",
        "amount_total",
        "amount_charged",
        "currency_charged",
        "amount_refunded",
        "checkout_session",
        "payment_intent",
        "payment_link_id",
        "stripe_customer_id",
        "checkout_url",
        "created_at",
        "paid_at",
    )
    exclude = ("checkout_session_id", "payment_intent_id", "cart_fingerprint")

    change_form_template = "admin/payments/order/change_form.html"

    def get_urls(self):
        refund = self.admin_site.admin_view(self.refund_view)
        return [path("<int:order_id>/refund/", refund, name="payments_order_refund"), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        order = Order.objects.filter(pk=object_id).only("status", "amount_charged", "amount_refunded").first()
        refundable = order is not None and order.status in REFUNDABLE_STATUSES and order.amount_remaining > 0
        extra_context = {**(extra_context or {}), "can_refund": refundable and self.has_refund_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def refund_view(self, request, order_id: int):
        """Refund part or all of one order: the amount and the reason, through the same service as the API."""
        if not self.has_refund_permission(request):
            raise PermissionDenied
        order = get_object_or_404(Order, pk=order_id)
        back = redirect(reverse("admin:payments_order_change", args=[order.pk]))
        if order.status not in REFUNDABLE_STATUSES or order.amount_remaining <= 0:
            self.message_user(request, f"Order {order.pk} is {order.status}: nothing to refund.", messages.WARNING)
            return back
        form = OrderRefundForm(request.POST or None, remaining=order.amount_remaining)
        if request.method == "POST" and form.is_valid():
            try:
                refund = services.order_refund(
                    order=order, amount=form.cleaned_data["amount"], by=request.user, reason=form.cleaned_data["reason"]
                )
            except (DomainError, ValidationError) as error:
                # Another refund (here or in Stripe's dashboard) may have landed since the form was checked.
                form.add_error(None, "; ".join(getattr(error, "messages", [str(error)])))
            else:
                currency = order.currency_charged or order.currency
                self.message_user(
                    request, f"Refunded {refund.amount} {currency} of order {order.pk}.", messages.SUCCESS
                )
                return back
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "order": order,
            "remaining": order.amount_remaining,
            "form": form,
            "title": f"Refund order {order.pk}",
        }
        return TemplateResponse(request, "admin/payments/order/refund.html", context)

    def save_model(self, request, obj, form, change) -> None:
        # Orders change only through their services (transitions, refunds, under the order's lock); the form
        # has nothing to save, and saving the row would write back whatever a webhook changed meanwhile.
        return

    @admin.display(description="total", ordering="amount_total")
    def amount(self, order: Order) -> str:
        return f"{order.amount_total} {order.currency}"

    @admin.display(description="charged by Stripe", ordering="amount_charged")
    def charged(self, order: Order) -> str:
        if not order.currency_charged:
            return "-"
        text = f"{order.amount_charged} {order.currency_charged}"
        if (order.amount_charged, order.currency_charged) != (order.amount_total, order.currency):
            return format_html('<strong style="color:#ba2121">{}</strong>', text)
        return text

    @admin.display(description="refunded", ordering="amount_refunded")
    def refunded(self, order: Order) -> int:
        return order.amount_refunded

    @admin.display(description="Checkout Session")
    def checkout_session(self, order: Order) -> str:
        return _dashboard_link("checkout/sessions", order.checkout_session_id or "")

    @admin.display(description="payment")
    def payment_intent(self, order: Order) -> str:
        return _dashboard_link("payments", order.payment_intent_id)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_refund_permission(self, request) -> bool:
        # Canceling a paid order refunds it too: the service asks for the same permission then.
        return request.user.has_perm("payments.refund_order")

    @admin.action(description="Refund in full", permissions=["refund"])
    def refund_in_full(self, request, queryset) -> None:
        self._each(request, queryset, lambda order: services.order_refund(order=order, amount=None, by=request.user))

    @admin.action(description="Cancel (refunds paid orders)", permissions=["change"])
    def cancel(self, request, queryset) -> None:
        self._each(request, queryset, lambda order: services.order_cancel(order=order, by=request.user))

    @admin.action(description="Accept what Stripe took as paid (orders in review)", permissions=["change"])
    def accept_payment(self, request, queryset) -> None:
        self._each(request, queryset, lambda order: services.order_accept_payment(order=order, by=request.user))

    def _each(self, request, queryset, act) -> None:
        done = 0
        for order in queryset:
            try:
                act(order)
                done += 1
            except DomainError as error:
                self.message_user(request, f"Order {order.pk}: {error}", messages.WARNING)
        if done:
            self.message_user(request, f"Done for {done} order(s).", messages.SUCCESS)


# --- dj-stripe's own admin -----------------------------------------------------------------------------------

DJSTRIPE_STRIPE_ACTIONS = ("_resync_instances", "_sync_all_instances", "_cancel")


def _superusers_only(view):
    @wraps(view)
    def gated(request, *args, **kwargs):
        if not request.user.is_superuser:
            raise PermissionDenied("dj-stripe's Stripe actions are for superusers.")
        return view(request, *args, **kwargs)

    return gated


def _gate_djstripe_actions(model_admin: admin.ModelAdmin) -> None:
    """dj-stripe's actions (re-sync, sync everything, cancel a subscription) call Stripe through a confirm
    view that checks no permission at all: any staff member could cancel a customer's subscription. They
    stay for superusers; everyone else neither sees them nor reaches the view."""
    all_actions, all_urls = model_admin.get_actions, model_admin.get_urls

    def get_actions(request):
        found = all_actions(request)
        if not request.user.is_superuser:
            for name in DJSTRIPE_STRIPE_ACTIONS:
                found.pop(name, None)
        return found

    def get_urls():
        patterns = all_urls()
        for pattern in patterns:
            if getattr(pattern, "name", None) == "djstripe_custom_action":
                pattern.callback = _superusers_only(pattern.callback)
        return patterns

    model_admin.get_actions, model_admin.get_urls = get_actions, get_urls


# dj-stripe registers an admin for each of its ~40 models; the shop stores rows in these few. The others
# (application fees, bank accounts, payouts ...) only crowd the sidebar, so they leave it.
DJSTRIPE_MODELS_IN_USE = (
    djstripe_models.Customer,
    djstripe_models.Event,
    djstripe_models.Invoice,
    djstripe_models.Price,
    djstripe_models.Product,
    djstripe_models.Subscription,
)


def _never(*args, **kwargs) -> bool:
    return False


for _model in [model for model in admin.site._registry if model._meta.app_label == "djstripe"]:
    if _model not in DJSTRIPE_MODELS_IN_USE:
        admin.site.unregister(_model)
        continue
    _model_admin = admin.site._registry[_model]
    # Stripe's word, as its events told it: read here; changed in Stripe, whose events come back.
    _model_admin.has_add_permission = _model_admin.has_change_permission = _never
    _model_admin.has_delete_permission = _never
    if isinstance(_model_admin, CustomActionMixin):
        _gate_djstripe_actions(_model_admin)


@admin.register(Payment)
class PaymentAdmin(RecordAdmin):
    """Each attempt to pay an order, as Stripe's events told it: read-only, since Stripe holds the truth."""

    list_display = ("id", "order", "status", "amount", "refunded", "card", "decline_code", "created_at")
    list_filter = ("status", "currency", "decline_code", ("created_at", admin.DateFieldListFilter))
    search_fields = ("=id", "=order__id", "payment_intent_id", "checkout_session_id", "order__email")
    list_select_related = ("order",)
    date_hierarchy = "created_at"

    @admin.display(description="amount", ordering="amount")
    def amount(self, payment: Payment) -> str:
        return f"{payment.amount} {payment.currency}"

    @admin.display(description="refunded", ordering="amount_refunded")
    def refunded(self, payment: Payment) -> str:
        return f"{payment.amount_refunded} {payment.currency}" if payment.amount_refunded else "-"

    @admin.display(description="card")
    def card(self, payment: Payment) -> str:
        return _card(payment)


class BooksDriftInline(RecordInline):
    model = BooksDrift
    fields = ("kind", "detail", "order", "stripe_id", "currency", "ours", "stripes")
    readonly_fields = fields


@admin.register(BooksCheck)
class BooksCheckAdmin(RecordAdmin):
    """Each comparison of our books with Stripe's (`stripe_reconcile --money`, and nightly): what disagreed."""

    list_display = ("started_at", "since", "until", "orders_checked", "charges_checked", "refunds_checked", "verdict")
    list_filter = (("started_at", admin.DateFieldListFilter),)
    inlines = (BooksDriftInline,)
    readonly_fields = (
        "since",
        "until",
        "started_at",
        "finished_at",
        "orders_checked",
        "charges_checked",
        "refunds_checked",
        "drift_count",
        "error",
    )

    @admin.display(description="verdict", ordering="drift_count")
    def verdict(self, check: BooksCheck) -> str:
        if check.error:
            return f"stopped: {Truncator(check.error).chars(60)}"
        if check.finished_at is None:
            return "running"
        return f"{check.drift_count} drift(s)" if check.drift_count else "clean"


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


# --- subscriptions: dj-stripe's rows, read here; changed through the API or Stripe's portal ----------------


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
