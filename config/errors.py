"""What a refusal means, for whoever asked. Services raise errors of these kinds and know nothing of HTTP;
`config.api_conventions` turns each kind into one answer (409, 502, 503), the admin into one message.

An error with a `public_detail` keeps its own words (a provider's message, an internal reason) for the log
and tells the client that fixed text; one without is written for the client and shown as it is.
"""


class DomainError(Exception):
    public_detail = ""


class Conflict(DomainError):
    """The request is well formed but the state of things does not allow it now (a paid order canceled twice)."""


class UpstreamRefused(DomainError):
    """A provider we called refused the request for good; nothing was changed."""


class Unavailable(DomainError):
    """A provider cannot be reached now; nothing happened, and the same request may be tried again after
    `retry_after` seconds (the answer's `Retry-After`)."""

    retry_after: float = 2.0

    def __init__(self, message: str = "", retry_after: float | None = None):
        super().__init__(message)
        if retry_after is not None:
            self.retry_after = retry_after
