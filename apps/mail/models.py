from django.db import models
from django.utils import timezone


class MessageKind(models.TextChoices):
    WELCOME = "welcome"
    VERIFY_EMAIL = "verify_email"
    RECEIPT = "receipt"
    PAYMENT_FAILED = "payment_failed"
    REFUND = "refund"
    ORDER_CANCELED = "order_canceled"
    SUBSCRIPTION_STARTED = "subscription_started"
    SUBSCRIPTION_RENEWED = "subscription_renewed"
    SUBSCRIPTION_PAYMENT_FAILED = "subscription_payment_failed"
    SUBSCRIPTION_TRIAL_ENDING = "subscription_trial_ending"
    SUBSCRIPTION_CANCELED = "subscription_canceled"


class MessageState(models.TextChoices):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutgoingMessage(models.Model):
    """The outbox: one row per message, written in the transaction of what caused it.

    `idempotency_key` names the cause (`receipt:order:42`), so a duplicated signal or a
    replayed event finds the row already there and mails nothing more.
    """

    idempotency_key = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=30, choices=MessageKind.choices, db_index=True)
    # Not an EmailField: an address refused when the message was written is kept, with the reason.
    recipient = models.CharField(max_length=254, db_index=True)
    subject = models.CharField(max_length=255)
    body_text = models.TextField()
    body_html = models.TextField()
    # The same on every attempt, so in the rare case a message goes out twice mail clients show it once.
    message_id = models.CharField(max_length=255, unique=True)
    state = models.CharField(max_length=10, choices=MessageState.choices, default=MessageState.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # A queued row is sent by its task; the beat sends it if it is still waiting long after this.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Who is sending it and until when; a worker that died mid-send leaves the row to be taken over.
    lease_owner = models.CharField(max_length=255, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="mail_outgoing_due")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient} ({self.state})"
