"""What billing keeps of its own: the Checkout Sessions that sell plans (the subscriptions themselves are
dj-stripe's rows)."""

from django.conf import settings
from django.db import models

# What a subscription in each status gives its user. `past_due` keeps access while Stripe retries the card.
ACCESS_STATUSES = ("trialing", "active", "past_due")
ENDED_STATUSES = ("canceled", "incomplete_expired")


# An invoice in one of these is never reopened by Stripe.
FINAL_INVOICE_STATUSES = ("paid", "void")
# How Stripe settles a plan change within a period (`proration_behavior`).
PRORATIONS = ("create_prorations", "always_invoice", "none")


class SubscriptionCheckoutStatus(models.TextChoices):
    OPEN = "open"
    COMPLETE = "complete"
    EXPIRED = "expired"


class SubscriptionCheckout(models.Model):
    """A Checkout Session we opened to sell plans to a user: what it sells and the subscription it started.

    The subscription itself lives in dj-stripe's `Subscription` (synced from Stripe's events), tied to
    the user through their mirrored customer; this row is how the session is found again (a retried
    request gets the same open session, an event about it finds it only by the id we stored).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="subscription_checkouts")
    lines = models.JSONField(help_text="[{price, quantity}] of catalog prices.")
    currency = models.CharField(max_length=3)
    trial_days = models.PositiveSmallIntegerField(null=True, blank=True)
    cart_fingerprint = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=10, choices=SubscriptionCheckoutStatus.choices, default=SubscriptionCheckoutStatus.OPEN
    )
    checkout_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    checkout_url = models.URLField(max_length=2048, blank=True)
    subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["user", "cart_fingerprint", "status"], name="payments_subcheckout_cart_idx")]

    def __str__(self) -> str:
        return f"subscription checkout {self.pk} ({self.status})"


class SubscriptionVersion(models.Model):
    """How many times a subscription's state (with its invoices) was stored here. A worker stores what it read
    from Stripe only if nothing was stored since the read began, and reads again otherwise: an older read
    never overwrites a newer state, and no lock is held while Stripe is asked (`locks.storing_state`)."""

    key = models.CharField(max_length=255, primary_key=True, help_text="The subscription's id (or invoice:<id>).")
    version = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key} v{self.version}"
