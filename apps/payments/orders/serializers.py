"""Orders over HTTP: carts, orders, payments, refunds and their stats, as the API takes and shows them."""

from datetime import date, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import validate_host
from django.utils import timezone
from rest_framework import serializers

from apps.catalog.models import MAX_UNIT_AMOUNT, Price
from apps.payments.orders.models import Order, OrderLine, OrderRefund, OrderTransition, Payment

MAX_CART_LINES = 100


MAX_SUBSCRIPTION_ITEMS = 20  # Stripe's limit of items on one subscription


MAX_QUANTITY = 999


# Stripe takes at most eight digits of minor units in one payment (999,999.99 USD).
MAX_PAYMENT_AMOUNT = MAX_UNIT_AMOUNT


class RedirectUrlField(serializers.URLField):
    """Where Stripe sends the customer back: only to the shop's own hosts (`CHECKOUT_REDIRECT_HOSTS`), so our
    checkout is never an open redirect to someone else's page; https unless DEBUG."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        # A browser reads `\` as `/` where Python does not (`https://evil.example\@shop.example/`), and a
        # user name or password in the URL only serves to disguise where it leads: neither is a shop's link.
        if "\\" in value or "%5c" in value.lower():
            raise serializers.ValidationError("A backslash has no place in this URL.")
        parts = urlsplit(value)
        schemes = ("http", "https") if settings.DEBUG else ("https",)
        if parts.scheme.lower() not in schemes:
            raise serializers.ValidationError(f"Enter an {' or '.join(schemes)} URL.")
        if parts.username is not None or parts.password is not None:
            raise serializers.ValidationError("A user name or password has no place in this URL.")
        try:
            port = parts.port
        except ValueError:
            port = -1
        if port is not None and not settings.DEBUG:
            raise serializers.ValidationError("Leave the port out: customers come back over the standard one.")
        if not parts.hostname or not validate_host(parts.hostname, settings.CHECKOUT_REDIRECT_HOSTS):
            raise serializers.ValidationError(
                f"Customers can only be sent back to {', '.join(settings.CHECKOUT_REDIRECT_HOSTS)}."
            )
        return value


class CartLineSerializer(serializers.Serializer):
    price = serializers.PrimaryKeyRelatedField(queryset=Price.objects.select_related("product"))
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)

    def validate_price(self, price: Price) -> Price:
        if not price.active or not price.product.active:
            raise serializers.ValidationError("This price is not on sale.")
        return price


class CartSerializer(serializers.Serializer):
    lines = CartLineSerializer(many=True, allow_empty=False, max_length=MAX_CART_LINES)

    def validate_lines(self, lines: list[dict]) -> list[dict]:
        currencies = {line["price"].currency for line in lines}
        if len(currencies) > 1:
            raise serializers.ValidationError(
                f"All prices of one payment must share a currency; this cart mixes {', '.join(sorted(currencies))}."
            )
        periods = {(line["price"].recurring_interval, line["price"].recurring_interval_count) for line in lines}
        if lines[0]["price"].recurring_interval and len(lines) > MAX_SUBSCRIPTION_ITEMS:
            raise serializers.ValidationError(f"A subscription holds at most {MAX_SUBSCRIPTION_ITEMS} plans.")
        if len(periods) > 1:
            if any(interval is None for interval, _ in periods):
                raise serializers.ValidationError(
                    "A cart holds one-off prices or plans, not both: pay for them in two checkouts."
                )
            raise serializers.ValidationError("All plans of one subscription must bill as often as each other.")
        total = sum(line["price"].unit_amount * line["quantity"] for line in lines)
        if total > MAX_PAYMENT_AMOUNT:
            raise serializers.ValidationError(
                f"The total, {total} (minor units of {currencies.pop()}), is more than one payment can take: "
                f"at most {MAX_PAYMENT_AMOUNT}. Split the cart."
            )
        return lines


class CheckoutInputSerializer(CartSerializer):
    success_url = RedirectUrlField(max_length=2048)
    cancel_url = RedirectUrlField(max_length=2048)


def sells_plans(lines: list[dict]) -> bool:
    return bool(lines[0]["price"].recurring_interval)


class PaymentLinkOutputSerializer(serializers.Serializer):
    payment_link_id = serializers.CharField()
    url = serializers.URLField()


class PriceCheckLineSerializer(serializers.Serializer):
    price = serializers.IntegerField()
    unit_amount = serializers.IntegerField(min_value=0)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)


class PriceCheckInputSerializer(serializers.Serializer):
    lines = PriceCheckLineSerializer(many=True, allow_empty=False, max_length=MAX_CART_LINES)


class OrderLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderLine
        fields = ("price", "product_name", "unit_amount", "quantity", "amount")
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):
    lines = OrderLineSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = (
            "id",
            "status",
            "currency",
            "amount_total",
            "amount_charged",
            "amount_refunded",
            "lines",
            "created_at",
            "paid_at",
            "checkout_url",
        )
        read_only_fields = fields


class PaymentSerializer(serializers.ModelSerializer):
    payment_intent = serializers.CharField(source="payment_intent_id", read_only=True)
    paid_through = serializers.SerializerMethodField(help_text="`checkout` (a Checkout Session) or `app` (an intent).")
    user = serializers.IntegerField(source="order.user_id", read_only=True, allow_null=True)

    class Meta:
        model = Payment
        fields = (
            "id",
            "order",
            "user",
            "status",
            "stripe_status",
            "amount",
            "amount_refunded",
            "currency",
            "card_brand",
            "card_last4",
            "failure_code",
            "decline_code",
            "failure_message",
            "payment_intent",
            "paid_through",
            "created_at",
            "succeeded_at",
            "failed_at",
        )
        read_only_fields = fields
        extra_kwargs = {
            "stripe_status": {"help_text": "The intent's own status in Stripe (e.g. requires_action)."},
            "failure_code": {"help_text": "Stripe's error code of the last failed attempt (e.g. card_declined)."},
            "decline_code": {"help_text": "The issuer's reason (e.g. insufficient_funds)."},
        }

    def get_paid_through(self, payment: Payment) -> str:
        return "checkout" if payment.checkout_session_id else "app"


class OrderRefundSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderRefund
        fields = ("stripe_refund_id", "amount", "reason", "created_at")
        read_only_fields = fields


class OrderTransitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderTransition
        fields = ("from_status", "to_status", "cause", "created_at")
        read_only_fields = fields


class OrderDetailSerializer(OrderSerializer):
    """An order with its story: each attempt to pay it, what went back, and every change of status."""

    payments = PaymentSerializer(many=True, read_only=True)
    refunds = OrderRefundSerializer(many=True, read_only=True)
    transitions = OrderTransitionSerializer(many=True, read_only=True)

    class Meta(OrderSerializer.Meta):
        fields = (*OrderSerializer.Meta.fields, "email", "payments", "refunds", "transitions")
        read_only_fields = fields


class PaymentIntentOutputSerializer(serializers.Serializer):
    order = serializers.IntegerField()
    payment_intent = serializers.CharField()
    client_secret = serializers.CharField(help_text="For the app only: Stripe.js or a mobile SDK pays with it.")
    publishable_key = serializers.CharField(help_text="The key the app gives Stripe.js or the mobile SDK.")
    amount = serializers.IntegerField(help_text="Minor units, from the catalog.")
    currency = serializers.CharField()
    status = serializers.CharField(help_text="The payment's status (pending until the app pays it).")


class RefundInputSerializer(serializers.Serializer):
    amount = serializers.IntegerField(min_value=1, required=False, help_text="Minor units; the rest when left out.")


class RefundOutputSerializer(serializers.ModelSerializer):
    order = OrderSerializer(read_only=True)

    class Meta:
        model = OrderRefund
        fields = ("stripe_refund_id", "amount", "reason", "created_at", "order")
        read_only_fields = fields


class StatsInputSerializer(serializers.Serializer):
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)
    granularity = serializers.ChoiceField(choices=("day", "week", "month"), default="day")

    def validate(self, data: dict) -> dict:
        data.setdefault("date_to", timezone.localdate())
        if "date_from" not in data:  # the 30 days up to date_to (or as many as the calendar has before it)
            data["date_from"] = data["date_to"] - min(timedelta(days=29), data["date_to"] - date.min)
        if data["date_from"] > data["date_to"]:
            raise serializers.ValidationError({"date_from": ["Must not be after date_to."]})
        if (data["date_to"] - data["date_from"]).days > 366:
            raise serializers.ValidationError({"date_from": ["At most a year at a time."]})
        return data


class PriceDiscrepancySerializer(serializers.Serializer):
    price = serializers.IntegerField()
    expected = serializers.IntegerField(allow_null=True, help_text="null when the price is not on sale.")
    provided = serializers.IntegerField()


class PriceCheckOutputSerializer(serializers.Serializer):
    verified = serializers.BooleanField()
    discrepancies = PriceDiscrepancySerializer(many=True)


class StatusStatsSerializer(serializers.Serializer):
    status = serializers.CharField()
    currency = serializers.CharField()
    count = serializers.IntegerField()
    amount_total = serializers.IntegerField()
    amount_refunded = serializers.IntegerField()


class DayRevenueSerializer(serializers.Serializer):
    day = serializers.DateField()
    currency = serializers.CharField()
    orders = serializers.IntegerField()
    revenue = serializers.IntegerField(help_text="Paid minus refunded, minor units.")


class CurrencyTotalsSerializer(serializers.Serializer):
    currency = serializers.CharField()
    gross = serializers.IntegerField(help_text="What Stripe took for orders paid in the range, minor units.")
    refunded = serializers.IntegerField(help_text="Refunds made in the range, minor units.")
    net = serializers.IntegerField(help_text="gross - refunded.")


class RevenuePeriodSerializer(serializers.Serializer):
    period = serializers.DateField(help_text="The first day of the day, week (Monday) or month.")
    currency = serializers.CharField()
    orders = serializers.IntegerField(help_text="Orders paid in the period.")
    revenue = serializers.IntegerField(help_text="What Stripe took, minor units.")


class RefundPeriodSerializer(serializers.Serializer):
    period = serializers.DateField()
    currency = serializers.CharField()
    refunds = serializers.IntegerField()
    refunded = serializers.IntegerField(help_text="Minor units.")


class OrderPeriodSerializer(serializers.Serializer):
    period = serializers.DateField()
    currency = serializers.CharField()
    orders = serializers.IntegerField(help_text="Orders placed in the period.")
    paid = serializers.IntegerField(help_text="Of those, the ones paid (refunded since or not).")


class FailureReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(help_text="The decline code (insufficient_funds, ...), else Stripe's error code.")
    count = serializers.IntegerField()


class BooksSerializer(serializers.Serializer):
    checked_at = serializers.DateTimeField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    drift_count = serializers.IntegerField(help_text="What our books and Stripe's disagreed on; 0 is clean.")
    complete = serializers.BooleanField(help_text="False when the check stopped early (Stripe unreachable).")


class OrderStatsSerializer(serializers.Serializer):
    """The stats of orders and payments (`PaymentStatsApi` adds the plans')."""

    date_from = serializers.DateField()
    date_to = serializers.DateField()
    granularity = serializers.CharField()
    by_status = StatusStatsSerializer(many=True)
    success_rate = serializers.FloatField(allow_null=True, help_text="Paid among finished orders.")
    payment_success_rate = serializers.FloatField(
        allow_null=True, help_text="Payments that succeeded among those that ended (succeeded, failed, canceled)."
    )
    totals = CurrencyTotalsSerializer(many=True)
    revenue = RevenuePeriodSerializer(many=True)
    refunds = RefundPeriodSerializer(many=True)
    orders = OrderPeriodSerializer(many=True)
    failures_by_reason = FailureReasonSerializer(many=True, help_text="Payments whose card was refused, by reason.")
    revenue_per_day = DayRevenueSerializer(many=True)
    in_review = serializers.IntegerField(
        help_text="Orders (of any date) waiting for an operator: Stripe took another amount than their total."
    )
    drift_count = serializers.IntegerField(
        allow_null=True, help_text="What the newest books check found disagreeing with Stripe; null before any check."
    )
    books = BooksSerializer(
        allow_null=True, help_text="The newest comparison of our books with Stripe's (stripe_reconcile --money)."
    )
