"""Why an order, a checkout or a refund could not go ahead; each says what the client is told."""

from config.errors import Conflict, Unavailable


class OrderActionRefused(Conflict):
    """The order is not in a state that allows this (already refunded, expired, ...)."""


class RefundNotApplicable(Exception):
    """The order holds no payment (yet) that this refund could come from (a webhook waits and retries)."""


class CheckoutUnavailable(Unavailable):
    """Stripe could not be reached to start the payment; nothing was charged."""

    public_detail = "The payment provider cannot be reached; nothing was charged."


class AppPaymentsNotConfigured(Unavailable):
    """No publishable key is configured, so an app could not pay an intent; none is made."""

    public_detail = "Paying from an app is not set up here: the shop has no Stripe publishable key configured."


class EventNotReady(Exception):
    """A Stripe event cannot apply yet (a refund whose payment is not recorded here yet): retried, never dropped."""


class SubscriptionActionRefused(Conflict):
    """The subscription is not in a state that allows this (ended, already on that plan, ...)."""
