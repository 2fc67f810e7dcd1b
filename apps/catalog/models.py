from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.catalog.currencies import STRIPE_CURRENCIES

# Stripe's ceiling for an amount in minor units (eight digits).
MAX_UNIT_AMOUNT = 99_999_999
METADATA_MAX_KEYS = 48  # Stripe allows 50; the mirror adds `app_ref` and `app_namespace`.
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500
RESERVED_METADATA_KEYS = frozenset({"app_ref", "app_namespace"})


def validate_currency(value: str) -> None:
    if value not in STRIPE_CURRENCIES:
        raise ValidationError(
            "%(value)s is not a currency Stripe supports (ISO 4217, lowercase, e.g. usd).",
            code="invalid_currency",
            params={"value": value},
        )


def validate_metadata(value) -> None:
    """Metadata is mirrored to Stripe, so it obeys Stripe's limits."""
    if not isinstance(value, dict):
        raise ValidationError("Metadata must be an object of string keys and string values.", code="invalid")
    if len(value) > METADATA_MAX_KEYS:
        raise ValidationError(f"At most {METADATA_MAX_KEYS} metadata keys.", code="too_many_keys")
    for key, item in value.items():
        if key in RESERVED_METADATA_KEYS:
            raise ValidationError(f"The metadata key {key!r} is reserved.", code="reserved_key")
        if not key or len(key) > METADATA_MAX_KEY_LENGTH or "[" in key or "]" in key:
            raise ValidationError(
                f"Metadata keys are 1 to {METADATA_MAX_KEY_LENGTH} characters without square brackets.",
                code="invalid_key",
            )
        if not isinstance(item, str) or len(item) > METADATA_MAX_VALUE_LENGTH:
            raise ValidationError(
                f"Metadata values are strings of at most {METADATA_MAX_VALUE_LENGTH} characters.", code="invalid_value"
            )


class RecurringInterval(models.TextChoices):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


# Stripe bills at most three years apart (3 years, 36 months, 156 weeks, 1095 days).
MAX_INTERVAL_COUNT = {"day": 1095, "week": 156, "month": 36, "year": 3}
MAX_TRIAL_DAYS = 730


class Product(models.Model):
    name = models.CharField(max_length=250)
    description = models.TextField(blank=True, max_length=5000)
    active = models.BooleanField(default=True, help_text="Archived products are hidden from shoppers.")
    metadata = models.JSONField(default=dict, blank=True, validators=[validate_metadata])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["active", "-created_at"], name="catalog_prod_active_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def app_ref(self) -> str:
        return f"{self._meta.label_lower}:{self.pk}"


class Price(models.Model):
    """An amount of money in minor units (cents for usd, yen for jpy) for one product."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="prices")
    unit_amount = models.PositiveIntegerField(
        help_text="In the currency's minor unit, e.g. 1999 for $19.99.",
        validators=[MinValueValidator(1), MaxValueValidator(MAX_UNIT_AMOUNT)],
    )
    currency = models.CharField(max_length=3, validators=[validate_currency])
    # Null, not "", for a one-off price: the API and Stripe both say `null`.
    recurring_interval = models.CharField(  # noqa: DJ001
        max_length=5,
        choices=RecurringInterval.choices,
        null=True,
        blank=True,
        help_text="Empty for a one-off price.",
    )
    recurring_interval_count = models.PositiveSmallIntegerField(
        default=1, help_text="Bill every this many intervals (3 with `month` is quarterly)."
    )
    trial_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="A new subscriber pays nothing for this many days (recurring prices only)."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(unit_amount__gte=1, unit_amount__lte=MAX_UNIT_AMOUNT),
                name="catalog_price_unit_amount_range",
            ),
            models.CheckConstraint(
                condition=models.Q(currency__regex=r"^[a-z]{3}$"),
                name="catalog_price_currency_lowercase",
            ),
            models.CheckConstraint(
                condition=models.Q(recurring_interval__isnull=True)
                | models.Q(recurring_interval__in=RecurringInterval.values),
                name="catalog_price_recurring_interval_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(recurring_interval_count__gte=1)
                & (models.Q(recurring_interval__isnull=False) | models.Q(recurring_interval_count=1)),
                name="catalog_price_interval_count_recurring",
            ),
            models.CheckConstraint(
                condition=models.Q(trial_days__isnull=True)
                | models.Q(recurring_interval__isnull=False, trial_days__gte=1, trial_days__lte=MAX_TRIAL_DAYS),
                name="catalog_price_trial_recurring",
            ),
        ]
        indexes = [models.Index(fields=["product", "active"], name="catalog_price_prod_active_idx")]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.unit_amount} {self.currency}{self.billing_period}"

    @property
    def billing_period(self) -> str:
        """`""`, `/month`, or `/3 months`."""
        if not self.recurring_interval:
            return ""
        count = self.recurring_interval_count
        return f"/{self.recurring_interval}" if count == 1 else f"/{count} {self.recurring_interval}s"

    def clean(self) -> None:
        errors = {}
        if self.recurring_interval in MAX_INTERVAL_COUNT:
            limit = MAX_INTERVAL_COUNT[self.recurring_interval]
            if not 1 <= self.recurring_interval_count <= limit:
                errors["recurring_interval_count"] = f"Between 1 and {limit} for `{self.recurring_interval}`."
        elif not self.recurring_interval:  # (one outside the choices is the field's own error)
            if self.recurring_interval_count != 1:
                errors["recurring_interval_count"] = "Only a recurring price has an interval count."
            if self.trial_days is not None:
                errors["trial_days"] = "Only a recurring price has a trial."
        if self.trial_days is not None and not 1 <= self.trial_days <= MAX_TRIAL_DAYS:
            errors["trial_days"] = f"Between 1 and {MAX_TRIAL_DAYS} days."
        if errors:
            raise ValidationError(errors)

    @property
    def app_ref(self) -> str:
        return f"{self._meta.label_lower}:{self.pk}"
