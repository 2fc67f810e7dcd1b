from rest_framework import serializers

from apps.catalog.models import (
    MAX_INTERVAL_COUNT,
    MAX_TRIAL_DAYS,
    MAX_UNIT_AMOUNT,
    Price,
    Product,
    RecurringInterval,
    validate_currency,
    validate_metadata,
)
from config.api_conventions import StrictCharField, StrictJSONBooleanField


class PriceOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Price
        fields = (
            "id",
            "product",
            "unit_amount",
            "currency",
            "recurring_interval",
            "recurring_interval_count",
            "trial_days",
            "active",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class ProductOutputSerializer(serializers.ModelSerializer):
    prices = PriceOutputSerializer(many=True, read_only=True, source="active_prices")

    class Meta:
        model = Product
        fields = ("id", "name", "description", "active", "metadata", "prices", "created_at", "updated_at")
        read_only_fields = fields


class ProductInputSerializer(serializers.Serializer):
    name = StrictCharField(max_length=250)
    description = StrictCharField(max_length=5000, allow_blank=True, required=False)
    active = StrictJSONBooleanField(required=False)
    metadata = serializers.JSONField(required=False, validators=[validate_metadata])


class LowercaseCurrencyField(StrictCharField):
    def to_internal_value(self, data):
        return super().to_internal_value(data).lower()


class PriceInputSerializer(serializers.Serializer):
    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all())
    unit_amount = serializers.IntegerField(
        min_value=1,
        max_value=MAX_UNIT_AMOUNT,
        help_text="In the currency's minor unit: 1999 is $19.99, 500 is ¥500.",
        error_messages={
            "min_value": "Amounts are positive integers in the currency's minor unit.",
            "max_value": f"Amounts are at most {MAX_UNIT_AMOUNT} minor units.",
        },
    )
    currency = LowercaseCurrencyField(min_length=3, max_length=3, validators=[validate_currency])
    recurring_interval = serializers.ChoiceField(
        choices=RecurringInterval.choices, allow_null=True, required=False, help_text="null for a one-off price."
    )
    recurring_interval_count = serializers.IntegerField(
        min_value=1,
        max_value=max(MAX_INTERVAL_COUNT.values()),
        required=False,
        help_text="Bill every this many intervals: 3 with `month` is quarterly. 1 unless given.",
    )
    trial_days = serializers.IntegerField(
        min_value=1,
        max_value=MAX_TRIAL_DAYS,
        allow_null=True,
        required=False,
        help_text="Days a new subscriber pays nothing (recurring prices only).",
    )
    active = StrictJSONBooleanField(required=False)

    def validate_product(self, product: Product) -> Product:
        price = self.instance
        if price is not None and product.pk != price.product_id:
            raise serializers.ValidationError("A price cannot move to another product; create a new price.")
        return product
