"""Per-user limits on the endpoints that spend the Stripe budget every worker and user shares: one user looping
on checkout cannot starve everyone else's checkouts into 503s."""

from config.api_conventions import ConfiguredRateThrottle


class StripeCallsThrottle(ConfiguredRateThrottle):
    """Per signed-in user, across checkout, payment links, cancel, refunds, mirror retries and `?sync=1`."""

    scope = "stripe_calls"

    def get_cache_key(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return None  # refused by the view's permissions anyway
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class SyncStripeCallsThrottle(StripeCallsThrottle):
    """The same budget, for an order read only when it asks Stripe first (`?sync=1`)."""

    def get_cache_key(self, request, view):
        if request.query_params.get("sync") not in ("1", "true"):
            return None
        return super().get_cache_key(request, view)
