# Django finds an app's commands only here; this one belongs to the mirror.
from apps.payments.mirror.management.commands.stripe_mirror import Command  # noqa: F401
