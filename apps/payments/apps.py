from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """The one app that talks to Stripe (mirror, checkout, orders, refunds, webhooks)."""

    name = "apps.payments"
    label = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        import stripe
        from django.conf import settings

        # dj-stripe calls Stripe through the SDK's module-level settings: point them
        # at STRIPE_API_BASE (the emulator in development and tests) when it is set.
        if settings.STRIPE_API_BASE:
            stripe.api_base = settings.STRIPE_API_BASE.rstrip("/")
        stripe.api_version = settings.STRIPE_API_VERSION
