"""Billing over HTTP: subscriptions and their plans, the portal, and what a checkout of either kind answers."""

from rest_framework import serializers

from apps.catalog.models import Price
from apps.payments.billing.models import PRORATIONS
from apps.payments.billing.selectors import active_plans, invoices_by_id
from apps.payments.mirror.refs import catalog_refs
from apps.payments.orders.serializers import OrderStatsSerializer, RedirectUrlField
from config.api_conventions import StrictJSONBooleanField
from config.days import moment


class CheckoutOutputSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(
        choices=("payment", "subscription"), help_text="`subscription` when the cart holds plans."
    )
    order = serializers.IntegerField(allow_null=True, help_text="The order (payment mode).")
    subscription_checkout = serializers.IntegerField(
        allow_null=True, help_text="The subscription checkout (subscription mode); the subscription follows."
    )
    session_id = serializers.CharField()
    url = serializers.URLField()


class SubscriptionStatusCountSerializer(serializers.Serializer):
    status = serializers.CharField()
    count = serializers.IntegerField()


class MrrSerializer(serializers.Serializer):
    currency = serializers.CharField()
    amount = serializers.IntegerField(help_text="Minor units a month.")


class SubscriptionStatsSerializer(serializers.Serializer):
    by_status = SubscriptionStatusCountSerializer(many=True, help_text="Every subscription now, by status.")
    active = serializers.IntegerField()
    trialing = serializers.IntegerField()
    past_due = serializers.IntegerField()
    mrr = MrrSerializer(
        many=True, help_text="Monthly recurring revenue of active and past-due plans (a year's price / 12, ...)."
    )
    started = serializers.IntegerField(help_text="Subscriptions that started in the date range.")
    churned = serializers.IntegerField(help_text="Subscriptions that ended in the date range.")


class StatsOutputSerializer(OrderStatsSerializer):
    subscriptions = SubscriptionStatsSerializer()


def _moment(timestamp: int | None) -> str | None:
    found = moment(timestamp)
    return found.isoformat().replace("+00:00", "Z") if found else None


class SubscriptionPlanSerializer(serializers.Serializer):
    price = serializers.IntegerField(allow_null=True, help_text="The catalog price (null if not one of ours).")
    product = serializers.IntegerField(allow_null=True)
    product_name = serializers.CharField()
    stripe_price = serializers.CharField()
    unit_amount = serializers.IntegerField()
    currency = serializers.CharField()
    interval = serializers.CharField()
    interval_count = serializers.IntegerField()
    quantity = serializers.IntegerField()


class InvoiceSummarySerializer(serializers.Serializer):
    id = serializers.CharField()
    number = serializers.CharField(allow_null=True)
    status = serializers.CharField()
    billing_reason = serializers.CharField(allow_null=True)
    amount_due = serializers.IntegerField()
    amount_paid = serializers.IntegerField()
    attempt_count = serializers.IntegerField()
    hosted_invoice_url = serializers.URLField(allow_null=True)


class SubscriptionListSerializer(serializers.ListSerializer):
    """Looks up the catalog rows and latest invoices of the whole page at once."""

    def to_representation(self, data):
        subs = list(data.all() if hasattr(data, "all") else data)
        self.child.context.update(subscription_page_context(subs))
        return super().to_representation(subs)


def subscription_page_context(subs: list) -> dict:
    items = [item for sub in subs for item in sub.stripe_data["items"]["data"]]
    invoice_ids = [sub.stripe_data.get("latest_invoice") for sub in subs if sub.stripe_data.get("latest_invoice")]
    invoices = invoices_by_id(invoice_ids)
    # A change answered before a worker stored it carries Stripe's answer of its invoice (`changes._keep_answer`).
    invoices.update({sub.invoice_as_answered["id"]: sub.invoice_as_answered for sub in subs if _answered(sub)})
    return {
        "catalog": catalog_refs({item["price"]["id"] for item in items} | {item["price"]["product"] for item in items}),
        "invoices": invoices,
    }


def _answered(sub) -> bool:
    return getattr(sub, "invoice_as_answered", None) is not None


class SubscriptionSerializer(serializers.Serializer):
    """A subscription as Stripe last told it (stored by dj-stripe), with the catalog's names for its plans."""

    id = serializers.CharField()
    status = serializers.CharField(help_text="trialing, active, past_due, unpaid, canceled, incomplete, ...")
    user = serializers.IntegerField(source="customer.subscriber_id", allow_null=True)
    customer = serializers.CharField(source="customer.id")
    email = serializers.CharField(source="customer.email", allow_null=True)
    currency = serializers.CharField()
    plans = SubscriptionPlanSerializer(many=True)
    current_period_start = serializers.DateTimeField(allow_null=True)
    current_period_end = serializers.DateTimeField(allow_null=True)
    trial_end = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()
    cancel_at = serializers.DateTimeField(allow_null=True)
    canceled_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    next_invoice_amount = serializers.IntegerField(
        allow_null=True, help_text="What the next renewal charges before prorations; null when none comes."
    )
    latest_invoice = InvoiceSummarySerializer(allow_null=True)
    created = serializers.DateTimeField()

    class Meta:
        list_serializer_class = SubscriptionListSerializer

    def to_representation(self, sub):
        if "catalog" not in self.context:
            self.context.update(subscription_page_context([sub]))
        refs, invoices = self.context["catalog"], self.context["invoices"]
        data = sub.stripe_data
        items = data["items"]["data"]
        plans = [
            {
                "price": refs.prices.get(item["price"]["id"]),
                "product": refs.products.get(item["price"]["product"]),
                "product_name": refs.product_names.get(refs.products.get(item["price"]["product"]), ""),
                "stripe_price": item["price"]["id"],
                "unit_amount": item["price"]["unit_amount"],
                "currency": item["price"]["currency"],
                "interval": item["price"]["recurring"]["interval"],
                "interval_count": item["price"]["recurring"]["interval_count"],
                "quantity": item["quantity"],
            }
            for item in items
        ]
        renews = data["status"] not in ("canceled", "incomplete_expired") and not data.get("cancel_at_period_end")
        latest = invoices.get(data.get("latest_invoice") or "")
        return {
            "id": sub.id,
            "status": data["status"],
            "user": sub.customer.subscriber_id,
            "customer": sub.customer.id,
            "email": sub.customer.stripe_data.get("email"),
            "currency": data["currency"],
            "plans": plans,
            "current_period_start": _moment(items[0].get("current_period_start") if items else None),
            "current_period_end": _moment(items[0].get("current_period_end") if items else None),
            "trial_end": _moment(data.get("trial_end")),
            "cancel_at_period_end": bool(data.get("cancel_at_period_end")),
            "cancel_at": _moment(data.get("cancel_at")),
            "canceled_at": _moment(data.get("canceled_at")),
            "ended_at": _moment(data.get("ended_at")),
            "next_invoice_amount": sum(p["unit_amount"] * p["quantity"] for p in plans) if renews else None,
            "latest_invoice": {key: latest.get(key) for key in InvoiceSummarySerializer().fields} if latest else None,
            "created": _moment(data.get("created")),
        }


class SubscriptionCancelInputSerializer(serializers.Serializer):
    at_once = StrictJSONBooleanField(
        default=False, help_text="Staff only: end it now instead of at the end of the paid period."
    )


class SubscriptionChangeInputSerializer(serializers.Serializer):
    price = serializers.PrimaryKeyRelatedField(queryset=Price.objects.select_related("product"))
    proration = serializers.ChoiceField(
        choices=PRORATIONS,
        required=False,
        help_text="Staff only. By default an upgrade is invoiced now (always_invoice) and a downgrade credited on "
        "the next invoice (create_prorations); none changes the plan without settling the difference.",
    )

    def validate_price(self, price: Price) -> Price:
        if not price.active or not price.product.active:
            raise serializers.ValidationError("This price is not on sale.")
        if not price.recurring_interval:
            raise serializers.ValidationError("A subscription moves to another plan: choose a recurring price.")
        return price


class BillingPortalInputSerializer(serializers.Serializer):
    return_url = RedirectUrlField(max_length=2048, help_text="Where the portal's Return link leads.")


class BillingPortalOutputSerializer(serializers.Serializer):
    url = serializers.URLField()


class ActivePlanSerializer(serializers.Serializer):
    product = serializers.IntegerField(allow_null=True)
    product_name = serializers.CharField()
    price = serializers.IntegerField(allow_null=True)
    subscription = serializers.CharField()
    status = serializers.CharField()
    current_period_end = serializers.IntegerField(allow_null=True, help_text="Unix time.")
    cancel_at_period_end = serializers.BooleanField()


class ActivePlansField(serializers.ListField):
    """`/users/me`'s `active_plans`: what the user's subscriptions give them now."""

    child = ActivePlanSerializer()

    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, user):
        return [dict(plan) for plan in active_plans(user)]
