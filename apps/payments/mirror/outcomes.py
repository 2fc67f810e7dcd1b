"""What a push, a sync and a catalog event can come to, as types rather than prose."""

from dataclasses import dataclass, field
from enum import StrEnum, unique

from config.outcomes import OutcomeKind


class SyncOutcome(StrEnum):
    SYNCED = "synced"  # Stripe holds the latest version
    NOTHING_TO_DO = "nothing to do"  # pushed already, or another holder of the lease is pushing it
    WAITING = "waiting"  # a price whose product is not in Stripe yet: the product's task brings it
    FAILED = "failed"  # Stripe refused it for good; the row is failed with the reason
    LEASE_LOST = "lease lost"  # another task took the row over meanwhile and finishes it
    CONFLICT = "conflict"  # the Stripe object already mirrors another local object; the row is failed


class Completion(StrEnum):
    """What recording a push did to the mirror row."""

    DONE = "done"
    AGAIN = "again"  # a newer version arrived meanwhile: it is pushed too
    LEASE_LOST = "lease lost"
    CONFLICT = "conflict"


@dataclass
class Pushed:
    """What Stripe holds after a push."""

    stripe_id: str
    pushed: dict = field(default_factory=dict)
    # Set when the pusher recorded it already, with Stripe's other answers, in one transaction.
    recorded: "Completion | None" = None


class Waiting:
    """A push that cannot go yet (a price whose product is not in Stripe); another task brings it."""


WAITING = Waiting()


class MirrorRejected(Exception):
    """Stripe refused the object for good (an `invalid_request_error`), or it cannot exist there; the row fails."""


@unique
class CatalogOutcome(OutcomeKind):
    """What a Stripe event about a product, price or customer did to the catalog or a user's link."""

    UNCHANGED = "unchanged (our own write, or already applied)"
    STRIPE_HOLDS_OURS = "unchanged (Stripe holds what we hold)"
    OTHER_INSTALLATION = "ignored: it mirrors a row of another installation"
    LOCAL_CHANGE_PENDING = "skipped: a local change is on its way to Stripe"
    PRODUCT_DELETED = "stale: the product was deleted in Stripe"
    PRODUCT_STALE = "stale: a newer state of this product was applied already"
    PRODUCT_SUPERSEDED = "ignored: another Stripe product mirrors this local product"
    PRODUCT_CREATED = "created local product {product} from the dashboard"
    PRODUCT_UPDATED = "updated the local product"
    PRODUCT_ARCHIVED = "archived the local product"
    NO_ACTIVE_PRODUCT = "unchanged (no active local product)"
    CATALOG_REFUSES = "not applied, the catalog refuses it: {messages}"
    PRICE_DELETED = "stale: the price was deleted in Stripe"
    PRICE_SUPERSEDED = "ignored: an earlier Stripe price of this local price"
    PRICE_CREATED = "created local price {price} from the dashboard"
    PRICE_REACTIVATED = "re-activated the local price"
    PRICE_ARCHIVED = "archived the local price"
    NO_ACTIVE_PRICE = "unchanged (no active local price)"
    PRICE_NOT_PER_UNIT = "not applied: the catalog has no tiered or customer-chosen prices"
    PRICE_PRODUCT_GONE = "not applied: its product is gone from Stripe"
    PRICE_PRODUCT_OTHER_INSTALLATION = "ignored: its product mirrors a row of another installation"
    PRICE_PRODUCT_NOT_MADE = "not applied: its product could not be made locally"
    NO_USER = "ignored: no local user for this customer"
    USER_DELETED = "ignored: the user was deleted"
    USER_HAS_ANOTHER_CUSTOMER = "ignored: the user has another customer"
    CUSTOMER_LINKED = "linked the customer to its user"
    CUSTOMER_ALREADY_LINKED = "the customer is linked to its user"
    CUSTOMER_UNLINKED = "unlinked the deleted customer from its user"
    NO_USER_HAD_CUSTOMER = "unchanged (no user had this customer)"
