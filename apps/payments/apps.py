from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """The one app that talks to Stripe, in slices, lowest first: gateway, mirror, orders, billing, webhooks."""

    name = "apps.payments"
    label = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        import stripe
        from django.conf import settings

        from apps.payments import checks  # noqa: F401 - registers the deploy checks
        from apps.payments.billing.serializers import ActivePlansField
        from apps.payments.gateway.client import install_for_module_level_calls
        from apps.payments.mirror import receivers  # noqa: F401 - connects the mirror to users' and the catalog's signals
        from apps.users.serializers import ME_EXTRA_FIELDS

        ME_EXTRA_FIELDS["active_plans"] = ActivePlansField

        # dj-stripe calls Stripe through the SDK's module-level settings: point them
        # at STRIPE_API_BASE (the emulator in development and tests) when it is set,
        # and through the same rate budget and circuit breaker as our own calls.
        if settings.STRIPE_API_BASE:
            stripe.api_base = settings.STRIPE_API_BASE.rstrip("/")
        stripe.api_version = settings.STRIPE_API_VERSION
        install_for_module_level_calls()
