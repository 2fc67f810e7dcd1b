"""Limits on the endpoints that spend the Stripe budget every worker and user shares: one user looping on
checkout (or one address with many fresh accounts) cannot starve everyone else's checkouts into 503s."""

from config.api_conventions import ConfiguredRateThrottle


class StripeCallsThrottle(ConfiguredRateThrottle):
    """Per signed-in user, across checkout, payment links, cancel, refunds, mirror retries and `?sync=1`."""

    scope = "stripe_calls"

    def get_cache_key(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return None  # refused by the view's permissions anyway
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class StripeCallsAddressThrottle(ConfiguredRateThrottle):
    """The same endpoints per client address: registering more accounts buys no more of the budget."""

    scope = "stripe_calls_address"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


STRIPE_CALL_THROTTLES = (StripeCallsThrottle, StripeCallsAddressThrottle)


def asks_stripe(request) -> bool:
    """An order read spends the Stripe budget only when it asks Stripe first (`?sync=1`)."""
    return request.query_params.get("sync") in ("1", "true")
