"""Why a handler may not finish an event now."""


class EventNotReady(Exception):
    """The event cannot apply yet (a refund whose payment is not recorded here yet): retried, never dropped."""
