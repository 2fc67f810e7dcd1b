"""What processing a stored event came to, besides what its handler says."""

from enum import unique

from config.outcomes import OutcomeKind


@unique
class EventOutcome(OutcomeKind):
    NOT_HANDLED = "not a type this app handles"
    OTHER_MODE = "refused: a {theirs}-mode event, but this installation uses a {ours}-mode key"
    ALREADY_DONE = "already done"
    WAITING = "waiting: {reason}"
    RETRIED = "failed, retried in {delay:g}s"
    WAITS_AND_RETRIED = "waiting, retried in {delay:g}s"
    PARKED = "failed, parked"
