"""What a push and a sync can come to, as types rather than prose."""

from dataclasses import dataclass, field
from enum import StrEnum


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


class Waiting:
    """A push that cannot go yet (a price whose product is not in Stripe); another task brings it."""


WAITING = Waiting()


class MirrorRejected(Exception):
    """Stripe refused the object for good (an `invalid_request_error`), or it cannot exist there; the row fails."""
