# Django finds an app's commands only here; this one belongs to the webhook intake.
from apps.payments.webhooks.management.commands.stripe_events import Command  # noqa: F401
