"""Orders in the admin: their lines, payments, transitions and refunds; refunds, cancels and accepting what
Stripe took, through the same services as the API; payments; the money checks against Stripe."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from apps.payments.orders.lifecycle import order_accept_payment
from apps.payments.orders.models import (
    REFUNDABLE_STATUSES,
    BooksCheck,
    BooksDrift,
    Order,
    OrderLine,
    OrderRefund,
    OrderStatus,
    OrderTransition,
    Payment,
    RefundRequest,
)
from apps.payments.orders.refunds import order_refund
from apps.payments.orders.sessions import order_cancel
from config.admin_conventions import GrowingTableAdmin, RecordAdmin, recent_values_filter
from config.errors import DomainError


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


class RefundRequestInline(RecordInline):
    """Refunds asked for here; one still `requested` is finished by a worker within a minute or two."""

    model = RefundRequest
    fields = ("created_at", "amount", "reason", "state", "refund", "created_by", "last_error")
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
class OrderAdmin(GrowingTableAdmin):
    """Orders with their lines, audit trail and refunds; operators refund and cancel through the same services."""

    list_display = ("id", "status", "user", "email", "amount", "charged", "refunded", "created_at", "paid_at")
    list_filter = (
        NeedsReviewFilter,
        "status",
        recent_values_filter("currency", "currency"),
        ("created_at", admin.DateFieldListFilter),
        ("paid_at", admin.DateFieldListFilter),
    )
    search_fields = ("=id", "email", "user__email", "checkout_session_id", "payment_intent_id")
    list_select_related = ("user",)
    inlines = (OrderLineInline, PaymentInline, OrderTransitionInline, OrderRefundInline, RefundRequestInline)
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
                refund = order_refund(
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
        self._each(request, queryset, lambda order: order_refund(order=order, amount=None, by=request.user))

    @admin.action(description="Cancel (refunds paid orders)", permissions=["change"])
    def cancel(self, request, queryset) -> None:
        self._each(request, queryset, lambda order: order_cancel(order=order, by=request.user))

    @admin.action(description="Accept what Stripe took as paid (orders in review)", permissions=["change"])
    def accept_payment(self, request, queryset) -> None:
        self._each(request, queryset, lambda order: order_accept_payment(order=order, by=request.user))

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


@admin.register(Payment)
class PaymentAdmin(RecordAdmin, GrowingTableAdmin):
    """Each attempt to pay an order, as Stripe's events told it: read-only, since Stripe holds the truth."""

    list_display = ("id", "order", "status", "amount", "refunded", "card", "decline_code", "created_at")
    list_filter = (
        "status",
        recent_values_filter("currency", "currency"),
        recent_values_filter("decline_code", "decline code"),
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("=id", "=order__id", "payment_intent_id", "checkout_session_id", "order__email")
    list_select_related = ("order",)

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
