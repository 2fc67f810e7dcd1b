# Django finds an app's commands only here; this one belongs to the orders slice (it compares the mirror's catalog too).
from apps.payments.orders.management.commands.stripe_reconcile import Command  # noqa: F401
