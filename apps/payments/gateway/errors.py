"""What a failed Stripe call means for its caller, in three classes, and the exceptions that carry them."""

from enum import StrEnum

import stripe

from config.errors import Conflict, Unavailable, UpstreamRefused


class ErrorClass(StrEnum):
    RETRY = "retry"  # the same call, with the same idempotency key, may succeed later
    NEW_KEY = "new_key"  # Stripe remembers this key's outcome: only a new key can go on
    PERMANENT = "permanent"  # Stripe refused the request itself: retrying cannot help


def classify(error: stripe.StripeError) -> ErrorClass:
    """What a failed call means for the caller: try again, try with a new key, or give up."""
    if isinstance(error, stripe.APIConnectionError):
        return ErrorClass.RETRY
    status = error.http_status or 0
    should_retry = (error.headers or {}).get("Stripe-Should-Retry")
    if isinstance(error, stripe.IdempotencyError) and status == 400:
        return ErrorClass.NEW_KEY
    if should_retry == "false":
        # A 5xx that Stripe saved for this key would only be replayed.
        return ErrorClass.NEW_KEY if status >= 500 else ErrorClass.PERMANENT
    if should_retry == "true" or status in (409, 429) or status >= 500:
        return ErrorClass.RETRY
    return ErrorClass.PERMANENT


def is_missing(error: stripe.StripeError) -> bool:
    """Stripe holds no such object (never made, or deleted)."""
    return isinstance(error, stripe.InvalidRequestError) and error.code == "resource_missing"


class StripeUnavailable(Unavailable):
    """Stripe cannot take the request now (rate limits, outage, open circuit); retry after `retry_after` s."""

    public_detail = "The payment provider cannot be reached; nothing was charged. Try again shortly."

    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(message, retry_after)


class StripeRefused(UpstreamRefused):
    """Stripe refused the request for good (an invalid request, a state that does not allow it): retrying
    the same call cannot help. The message is Stripe's, for the log under the answer's request id."""

    public_detail = "The payment provider refused the request; nothing was changed."

    def __init__(self, error: stripe.StripeError):
        request_id = getattr(error, "request_id", None)
        super().__init__(f"{error.user_message or getattr(error, 'message', None) or error} (request {request_id})")
        self.code = getattr(error, "code", None)


class StripeKeySpent(Conflict):
    """Stripe remembers a failure (or other parameters) for this idempotency key: only a new key can go on."""

    public_detail = "The payment provider holds an earlier request with this key; use a new one."
