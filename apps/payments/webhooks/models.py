"""What the webhook intake keeps: how far each Stripe event got."""

from django.db import models


class WebhookEventState(models.TextChoices):
    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored", "ignored (not a type we handle)"
    REFUSED = "refused", "refused (live/test mode differs from our key)"
    FAILED = "failed", "failed (parked)"


class WebhookEvent(models.Model):
    """How far one Stripe event got: received once, processed once, or parked as failed.

    The raw event itself is dj-stripe's `Event` row with the same id.
    """

    stripe_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=250, db_index=True)
    state = models.CharField(max_length=10, choices=WebhookEventState.choices, default=WebhookEventState.RECEIVED)
    deliveries = models.PositiveIntegerField(default=1, help_text="How many times Stripe delivered it.")
    attempts = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=255, blank=True, help_text="What processing did, in a few words.")
    last_error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    retry_at = models.DateTimeField(null=True, blank=True, help_text="A failed attempt is retried from then.")
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-received_at", "-id")
        indexes = [
            models.Index(fields=["state", "received_at"], name="payments_webhook_state_idx"),
            # The drains' next event: the waiting ones in order, however many settled events the table holds
            # and however the statistics read (a partial index holds only the waiting rows).
            models.Index(
                fields=["id"], condition=models.Q(state=WebhookEventState.RECEIVED), name="payments_webhook_waiting_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stripe_id} {self.type} ({self.state})"
