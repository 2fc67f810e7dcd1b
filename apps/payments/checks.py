"""`manage.py check --deploy` errors for a deployment that would take no real money or accept forged events.

Production refuses to start on any of them (`config.deploy`); `STRIPE_TEST_MODE_ALLOWED=true` says on purpose
that a deployment (a staging site) runs on a test key.
"""

from django.conf import settings
from django.core.checks import Error, Tags, register

STRIPE_API = "https://api.stripe.com"
TEST_KEY_PREFIXES = ("sk_test_", "rk_test_")
KEY_PREFIXES = ("sk_live_", "rk_live_", *TEST_KEY_PREFIXES)
MIN_WEBHOOK_SECRET_LENGTH = len("whsec_") + 16


@register(Tags.security, deploy=True)
def check_stripe_is_stripe(app_configs, **kwargs) -> list[Error]:
    found = []
    base = settings.STRIPE_API_BASE  # normalised in settings (no trailing slash)
    if base and base != STRIPE_API:
        found.append(
            Error(
                f"STRIPE_API_BASE is {base}: payments would go to an emulator or stub, not to Stripe.",
                hint="Leave STRIPE_API_BASE unset in production.",
                id="payments.E001",
            )
        )
    key = settings.STRIPE_SECRET_KEY
    if not key.startswith(KEY_PREFIXES):
        found.append(
            Error(
                "STRIPE_SECRET_KEY is empty or not a Stripe secret or restricted key.",
                hint="Set it to the sk_live_... (or rk_live_...) key of your Stripe account.",
                id="payments.E002",
            )
        )
    elif key.startswith(TEST_KEY_PREFIXES) and not settings.STRIPE_TEST_MODE_ALLOWED:
        found.append(
            Error(
                "STRIPE_SECRET_KEY is a test-mode key: no payment would be real.",
                hint="Use the live key, or set STRIPE_TEST_MODE_ALLOWED=true if this deployment is a test site.",
                id="payments.E003",
            )
        )
    # `*`, or a dot and one label (`.com`): every site, or every site under a top-level domain.
    too_wide = [
        host
        for host in settings.CHECKOUT_REDIRECT_HOSTS
        if "*" in host or (host.startswith(".") and "." not in host[1:])
    ]
    if too_wide:
        found.append(
            Error(
                f"CHECKOUT_REDIRECT_HOSTS admits {', '.join(repr(h) for h in too_wide)}: checkout would send "
                "customers to any site (an open redirect).",
                hint="List the shop's own hosts, e.g. shop.example.com or .example.com for its subdomains.",
                id="payments.E005",
            )
        )
    publishable = settings.STRIPE_PUBLISHABLE_KEY
    wanted = "pk_test_" if key.startswith(TEST_KEY_PREFIXES) else "pk_live_"
    if publishable and not publishable.startswith(wanted):
        found.append(
            Error(
                f"STRIPE_PUBLISHABLE_KEY is not a {wanted}... key: apps would pay intents in another mode or "
                "account than the secret key made them in.",
                hint="Copy the publishable key that pairs with STRIPE_SECRET_KEY from the Stripe dashboard.",
                id="payments.E006",
            )
        )
    secrets = settings.STRIPE_WEBHOOK_SECRETS
    if not secrets or any(
        not secret.startswith("whsec_") or len(secret) < MIN_WEBHOOK_SECRET_LENGTH for secret in secrets
    ):
        found.append(
            Error(
                "STRIPE_WEBHOOK_SECRET is empty or not a Stripe signing secret: no genuine event would be accepted, "
                "or a forged one would.",
                hint="Copy the endpoint's signing secret (whsec_...) from the Stripe dashboard.",
                id="payments.E004",
            )
        )
    return found


@register()
def check_stripe_rate_limits(app_configs, **kwargs) -> list[Error]:
    """The shared budget spaces calls by 1/rate: a rate of nothing would stop every Stripe call, not limit it."""
    return [
        Error(
            f"{name} is {getattr(settings, name)}: the Stripe rate budget needs a number of requests per second "
            "above 0.",
            hint="Leave it unset for Stripe's own limits, or lower it to share an account's limits between apps.",
            id="payments.E007",
        )
        for name in ("STRIPE_RATE_LIMIT_PER_SECOND", "STRIPE_RATE_LIMIT_PER_ENDPOINT")
        if getattr(settings, name) <= 0
    ]
