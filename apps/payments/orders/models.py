"""Orders, their lines, transitions, refunds and payments; payment links; client idempotency keys; the
money checks against Stripe."""

from django.conf import settings
from django.db import models
from django.db.models.functions import Upper


class OrderStatus(models.TextChoices):
    PENDING = "pending"
    PAID = "paid"
    REVIEW = "review", "review (Stripe took another amount)"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


# The only moves an order makes. A declined card leaves the Checkout Session open, so a
# failed order can still be paid on a second try; a paid order is never downgraded. Money
# taken that is not the order's total parks the order in `review` for an operator, who
# accepts it as paid or refunds it.
_TAKES_PAYMENT = {OrderStatus.PAID, OrderStatus.REVIEW}
ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.PENDING: frozenset({*_TAKES_PAYMENT, OrderStatus.FAILED, OrderStatus.EXPIRED, OrderStatus.CANCELED}),
    OrderStatus.FAILED: frozenset({*_TAKES_PAYMENT, OrderStatus.EXPIRED, OrderStatus.CANCELED}),
    OrderStatus.REVIEW: frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}),
    OrderStatus.PAID: frozenset({OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}),
    OrderStatus.PARTIALLY_REFUNDED: frozenset({OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}),
    # Final, except that money Stripe took for them anyway must reach an operator.
    OrderStatus.EXPIRED: frozenset({OrderStatus.REVIEW}),
    OrderStatus.CANCELED: frozenset({OrderStatus.REVIEW}),
    OrderStatus.REFUNDED: frozenset(),
}


# Stripe holds money for these: they can be refunded.
REFUNDABLE_STATUSES = frozenset({OrderStatus.PAID, OrderStatus.REVIEW, OrderStatus.PARTIALLY_REFUNDED})
# Ended without money kept: a cancel finds these as it would leave them.
NOTHING_LEFT_TO_CANCEL = frozenset({OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REFUNDED})


class Order(models.Model):
    """A cart being paid through Stripe. Money in integer minor units of `currency`."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    email = models.EmailField(blank=True, help_text="Who to write to; a guest's comes from Stripe.")
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING, db_index=True)
    currency = models.CharField(max_length=3)
    # 64 bits: a line of 999 x 99,999,999 does not fit in 32, and must be refused, not overflow.
    amount_total = models.PositiveBigIntegerField()
    # What Stripe says it took (the session's or payment intent's amount), set when it took it.
    amount_charged = models.PositiveBigIntegerField(default=0)
    currency_charged = models.CharField(max_length=3, blank=True)
    amount_refunded = models.PositiveBigIntegerField(default=0)
    # The ids we stored when we created the Stripe objects: the only way an event finds its order.
    checkout_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    checkout_url = models.URLField(max_length=2048, blank=True)
    payment_link_id = models.CharField(max_length=255, blank=True, db_index=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    # The cart and return URLs this order was made for: the same request again soon gets this order back.
    cart_fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount_refunded__lte=models.F("amount_charged")),
                name="payments_order_refund_within_charged",
            )
        ]
        indexes = [
            models.Index(fields=["user", "cart_fingerprint", "created_at"], name="payments_order_cart_idx"),
            # The stats read revenue by the day it was paid; staff find orders by email, in any case.
            models.Index(fields=["paid_at"], condition=models.Q(paid_at__isnull=False), name="payments_order_paid_idx"),
            models.Index(Upper("email"), name="payments_order_email_idx"),
        ]
        # Moving money back is its own decision: staff who may view or change orders may not refund them.
        permissions = [("refund_order", "Can refund order")]

    def __str__(self) -> str:
        return f"Order {self.pk} ({self.status})"

    @property
    def amount_remaining(self) -> int:
        """What can still be refunded: what Stripe took, less what went back."""
        return self.amount_charged - self.amount_refunded


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    price = models.ForeignKey("catalog.Price", on_delete=models.PROTECT, related_name="order_lines")
    # As they were when the order was placed: the catalog may change afterwards.
    product_name = models.CharField(max_length=250)
    unit_amount = models.PositiveIntegerField()
    quantity = models.PositiveIntegerField()
    amount = models.PositiveBigIntegerField()

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_name}"


class OrderTransition(models.Model):
    """The audit trail: every status change, what caused it (an event, a user, a sync) and when."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=20, choices=OrderStatus.choices)
    to_status = models.CharField(max_length=20, choices=OrderStatus.choices)
    cause = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.from_status} -> {self.to_status} ({self.cause})"


class OrderRefund(models.Model):
    """A refund of (part of) an order, made here or in the Stripe dashboard."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="refunds")
    stripe_refund_id = models.CharField(max_length=255, unique=True)
    amount = models.PositiveBigIntegerField()
    reason = models.CharField(max_length=50, blank=True)
    # Refunds asked for here: a double click carries the same key and gets this refund back.
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.stripe_refund_id} ({self.amount})"


class RefundRequestState(models.TextChoices):
    REQUESTED = "requested", "requested (Stripe not heard from yet)"
    SETTLED = "settled"
    FAILED = "failed", "failed (Stripe refused it)"


class RefundRequest(models.Model):
    """A refund asked for here, written before Stripe is called, so none is lost or made twice whatever fails
    between the call and its answer being recorded: one left `requested` is finished by the worker, with the
    same idempotency key (Stripe answers it with the refund it made, or makes it)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="refund_requests")
    amount = models.PositiveBigIntegerField(help_text="Minor units, as it was when asked.")
    # What the client asked for (None: the rest), so a double click finds the request its twin made.
    amount_asked = models.PositiveBigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=50)
    idempotency_key = models.CharField(max_length=255, unique=True, help_text="The Stripe key of its one refund.")
    client_key = models.CharField(max_length=255, blank=True, help_text="The client's Idempotency-Key, if any.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    state = models.CharField(max_length=10, choices=RefundRequestState.choices, default=RefundRequestState.REQUESTED)
    refund = models.OneToOneField(
        "OrderRefund", null=True, blank=True, on_delete=models.SET_NULL, related_name="request"
    )
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(
                fields=["state", "created_at"],
                condition=models.Q(state="requested"),
                name="payments_refundreq_open_idx",
            )
        ]

    def __str__(self) -> str:
        return f"refund of {self.amount} for order {self.order_id} ({self.state})"


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "pending (waiting for a card, or for its 3D Secure)"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


# Where a payment's story ends: a late or repeated event about an earlier step changes nothing.
PAYMENT_SETTLED = frozenset(
    {PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}
)


class Payment(models.Model):
    """One attempt to pay an order: the payment intent of a Checkout Session, or one made for an app.

    Written from Stripe's events (and when we create the intent), never fetched when read: what the
    card was, why it was declined, how much went back.
    """

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="payments")
    payment_intent_id = models.CharField(max_length=255, unique=True)
    checkout_session_id = models.CharField(max_length=255, blank=True, help_text="Empty for an app's intent.")
    status = models.CharField(max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    stripe_status = models.CharField(max_length=40, blank=True, help_text="The intent's own status in Stripe.")
    amount = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    amount_refunded = models.PositiveBigIntegerField(default=0)
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    # Why the last attempt failed, as Stripe said it (kept when a later card succeeds).
    failure_code = models.CharField(max_length=100, blank=True)
    decline_code = models.CharField(max_length=100, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    # The `created` time of the newest event applied, so an older one never overwrites it.
    stripe_event_at = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount_refunded__lte=models.F("amount")), name="payments_payment_refund_within"
            )
        ]
        indexes = [
            models.Index(fields=["created_at"], name="payments_payment_created_idx"),
            models.Index(fields=["status", "created_at"], name="payments_payment_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.payment_intent_id} ({self.status})"


class BooksCheck(models.Model):
    """One comparison of our books (paid orders, payments, refunds) with Stripe's over a time range."""

    since = models.DateTimeField()
    until = models.DateTimeField()
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    orders_checked = models.PositiveIntegerField(default=0)
    charges_checked = models.PositiveIntegerField(default=0)
    refunds_checked = models.PositiveIntegerField(default=0)
    drift_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, help_text="Why the check stopped before the end.")

    class Meta:
        ordering = ("-started_at", "-id")

    def __str__(self) -> str:
        return f"books {self.since:%Y-%m-%d}..{self.until:%Y-%m-%d}: {self.drift_count} drift(s)"


class DriftKind(models.TextChoices):
    CHARGE_MISSING = "charge_missing", "paid here, no charge in Stripe"
    ORDER_MISSING = "order_missing", "a charge in Stripe with no order here"
    CHARGED_UNPAID = "charged_unpaid", "Stripe took money for an order not paid here"
    AMOUNT_MISMATCH = "amount_mismatch", "Stripe charged another amount or currency"
    BALANCE_MISMATCH = "balance_mismatch", "the balance transaction disagrees with its charge"
    REFUND_NOT_RECORDED = "refund_not_recorded", "refunded in Stripe, not recorded here"
    REFUND_MISSING = "refund_missing", "recorded here, no such refund in Stripe"
    REFUND_AMOUNT_MISMATCH = "refund_amount_mismatch", "a refund of another amount in Stripe"
    PAYMENT_MISMATCH = "payment_mismatch", "the payment here disagrees with its charge"


class BooksDrift(models.Model):
    """One thing our books and Stripe's disagree on, as a check found it."""

    books_check = models.ForeignKey(BooksCheck, on_delete=models.CASCADE, related_name="drifts")
    kind = models.CharField(max_length=30, choices=DriftKind.choices)
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    stripe_id = models.CharField(max_length=255, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    ours = models.BigIntegerField(null=True, blank=True, help_text="The amount our books hold.")
    stripes = models.BigIntegerField(null=True, blank=True, help_text="The amount Stripe holds.")
    detail = models.CharField(max_length=255)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


class PaymentLink(models.Model):
    """A Stripe Payment Link made here. Only a session of one of these becomes an order (of its own);
    its lines are ours, so the order is priced from the catalog, not from what the session says."""

    stripe_id = models.CharField(max_length=255, unique=True)
    url = models.URLField(max_length=2048)
    currency = models.CharField(max_length=3)
    lines = models.JSONField(help_text="[{price, quantity}] as sold through the link.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return self.stripe_id


class IdempotentRequest(models.Model):
    """A client's `Idempotency-Key` for a request that moves money: the same key from the same user
    gets the first answer back (24 hours); the same key with another request is refused."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=100, help_text="What the key was used for: checkout, payment-link, refund:...")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="A hash of the request it was first used with.")
    # Empty while the first request runs.
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "scope", "key"], name="payments_idempotent_request_unique")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"
