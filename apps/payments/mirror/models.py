"""What the mirror keeps: where each user, product and price stands with Stripe, the reconcile runs, and
the newest state of each Stripe object applied here."""

from django.db import models


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


class ReconcileHold(models.Model):
    """Which run of `stripe_reconcile` holds a kind, until when. A run renews its hold at every checkpoint; one
    that was killed gives the kind back when its hold runs out. A row, not a PostgreSQL session lock: a
    connection pooler in transaction mode (PgBouncer) hands a session to another client between statements."""

    kind = models.CharField(max_length=20, choices=MirrorKind.choices, primary_key=True)
    holder = models.CharField(max_length=64)
    held_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.kind} held by {self.holder} until {self.held_until:%H:%M:%S}"


class StripeWatermark(models.Model):
    """The newest state of one Stripe object applied here, so an older event never overwrites a newer one."""

    stripe_id = models.CharField(max_length=255, primary_key=True)
    updated = models.BigIntegerField(null=True, blank=True, help_text="The object's own `updated` timestamp.")
    deleted = models.BooleanField(default=False)
    seen_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.stripe_id} @ {self.updated}"
