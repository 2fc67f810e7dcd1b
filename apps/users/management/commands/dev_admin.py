"""Make sure a staff login exists on a development machine (used by `make run`)."""

import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.users.models import User

DEV_ADMIN_EMAIL = "admin@example.com"


class Command(BaseCommand):
    help = "Make admin@example.com log in with the password in var/dev-admin-password (DEBUG only)."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("dev_admin only runs with DEBUG=True; use createsuperuser elsewhere.")
        password_file = Path(settings.VAR_DIR) / "dev-admin-password"
        # The file is the truth, so every database `make run` points at (SQLite, PostgreSQL) gets the same login.
        if password_file.exists():
            password = password_file.read_text().strip()
        else:
            password = secrets.token_urlsafe(12)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        user = User.objects.filter(email=DEV_ADMIN_EMAIL).first()
        if user is None:
            User.objects.create_superuser(DEV_ADMIN_EMAIL, password, name="Dev Admin")
        elif not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        self.stdout.write(self.style.SUCCESS(f"Staff login: {DEV_ADMIN_EMAIL}, password in {password_file}"))
