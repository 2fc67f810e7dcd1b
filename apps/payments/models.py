from django.conf import settings
from django.db import models
from django.db.models.functions import Upper


class MirrorKind(models.TextChoices):
    """What is mirrored, named like the `app_ref` it carries in Stripe (`catalog.price:31`)."""

    USER = "users.user", "User → Customer"
    PRODUCT = "catalog.product", "Product → Product"
    PRICE = "catalog.price", "Price → Price"


class MirrorState(models.TextChoices):
    PENDING = "pending"
    SYNCED = "synced"
    FAILED = "failed"


class MirrorRecord(models.Model):
    """That a local object must reach Stripe, and how far it got.

    `version` counts local changes; `synced_version` is the one Stripe holds. A task
    pushing a version holds a lease on the row, so one object is never written to
    Stripe by two workers at once and a newer state is never followed by an older one.
    """

    kind = models.CharField(max_length=20, choices=MirrorKind.choices)
    object_id = models.BigIntegerField()
    version = models.PositiveIntegerField(default=1)
    synced_version = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=10, choices=MirrorState.choices, default=MirrorState.PENDING)
    deleted = models.BooleanField(default=False, help_text="The local object is gone; Stripe's is deleted or archived.")
    stripe_id = models.CharField(max_length=255, blank=True, help_text="The Stripe object that mirrors it now.")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # Bumped when Stripe's memory of an idempotency key cannot be trusted any more
    # (a day old, or it replays a failure); a create then looks for the object first.
    key_generation = models.PositiveSmallIntegerField(default=0)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    pending_since = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=255, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # What we last wrote, for what Stripe will not tell us cheaply (metadata keys to
    # remove, a price's immutable fields).
    pushed = models.JSONField(default=dict, blank=True)
    # The reconcile run (`ReconcileRun`) that last found this row's Stripe object, so a run can tell, after
    # reading Stripe page by page, which local objects Stripe lacks without holding Stripe's catalog in memory.
    seen_by_reconcile = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-updated_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=["kind", "object_id"], name="payments_mirror_one_row_per_object"),
            # One Stripe object per local object, ever: a customer is never shared by two users.
            models.UniqueConstraint(
                fields=["stripe_id"], condition=~models.Q(stripe_id=""), name="payments_mirror_stripe_id_unique"
            ),
        ]
        indexes = [models.Index(fields=["state", "pending_since"], name="payments_mirror_state_idx")]

    def __str__(self) -> str:
        return f"{self.app_ref} ({self.state})"

    @property
    def app_ref(self) -> str:
        return f"{self.kind}:{self.object_id}"


class ReconcilePhase(models.TextChoices):
    STRIPE = "stripe", "reading Stripe"
    CLAIMED = "claimed", "settling objects that claim another's local object"
    LOCAL = "local", "looking for local objects Stripe lacks"
    DONE = "done"


class ReconcileRun(models.Model):
    """One comparison of a mirrored kind with Stripe (`stripe_reconcile`), checkpointed page by page so a run
    that is stopped continues where it was instead of reading a large catalog again."""

    kind = models.CharField(max_length=20, choices=MirrorKind.choices)
    repair = models.BooleanField()
    phase = models.CharField(max_length=10, choices=ReconcilePhase.choices, default=ReconcilePhase.STRIPE)
    stripe_cursor = models.CharField(max_length=255, blank=True, help_text="The last Stripe object read.")
    local_cursor = models.BigIntegerField(default=0, help_text="The last local object compared.")
    # Objects that carry a local object's ref but are not its mirror's: settled once Stripe has been read.
    claims = models.JSONField(default=list, blank=True)
    local = models.PositiveIntegerField(default=0)
    stripe = models.PositiveIntegerField(default=0)
    missing = models.PositiveIntegerField(default=0)
    extra = models.PositiveIntegerField(default=0)
    differing = models.PositiveIntegerField(default=0)
    repaired = models.PositiveIntegerField(default=0)
    examples = models.JSONField(default=dict, blank=True, help_text="The first refs of each drift, to report.")
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-started_at",)

    def __str__(self) -> str:
        return f"reconcile {self.kind} #{self.pk} ({self.phase})"


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
        indexes = [models.Index(fields=["state", "received_at"], name="payments_webhook_state_idx")]

    def __str__(self) -> str:
        return f"{self.stripe_id} {self.type} ({self.state})"


class StripeWatermark(models.Model):
    """The newest state of one Stripe object applied here, so an older event never overwrites a newer one."""

    stripe_id = models.CharField(max_length=255, primary_key=True)
    updated = models.BigIntegerField(null=True, blank=True, help_text="The object's own `updated` timestamp.")
    deleted = models.BooleanField(default=False)
    seen_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.stripe_id} @ {self.updated}"


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


class Installation(models.Model):
    """This installation's namespace in a Stripe account that other installations may share.

    Generated once; every Stripe object we mirror carries it beside its `app_ref`, and
    objects of other namespaces are never adopted, matched or reconciled.
    """

    namespace = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.namespace


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
