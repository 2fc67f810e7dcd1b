"""A production process refuses to start on what `manage.py check --deploy` calls an error.

Gunicorn and Celery run no system checks of their own, so a deployment with an emulator's address or a
blank webhook secret would otherwise serve traffic; here it stops with the checks' own messages instead.
"""

import os

import django
from django.conf import settings
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured


def refuse_unsafe_start() -> None:
    if settings.SETTINGS_ROLE == "development" and not settings.DEBUG:
        # Development settings accept the emulator, test keys and no HTTPS: with DEBUG off they are a server
        # started on the wrong settings (a `.env` copied from compose.dev.env), not a developer's machine.
        raise ImproperlyConfigured(
            "Refusing to start: development settings (config.settings.local) with DEBUG off. A server runs "
            "DJANGO_SETTINGS_MODULE=config.settings.production; a developer's machine runs DJANGO_DEBUG=true."
        )
    if not settings.REFUSE_UNSAFE_START:
        return
    errors = [message for message in run_checks(include_deployment_checks=True) if message.is_serious()]
    if errors:
        raise ImproperlyConfigured(
            "Refusing to start (manage.py check --deploy):\n" + "\n".join(f"  {error}" for error in errors)
        )


def main() -> None:
    """`python -m config.deploy`: the release step's check, as strict as the processes' own start."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
    django.setup()
    refuse_unsafe_start()
    verdict = "passed" if settings.REFUSE_UNSAFE_START else f"skipped ({settings.SETTINGS_ROLE} settings, DEBUG on)"
    print(f"deployment checks {verdict}")  # noqa: T201 - the release step's one line of output


if __name__ == "__main__":
    main()
