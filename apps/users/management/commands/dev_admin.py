"""Make sure a staff login exists on a development machine (used by `make run`)."""

import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.users.models import User

DEV_ADMIN_EMAIL = "admin@example.com"


class Command(BaseCommand):
    help = "Create admin@example.com with a random password saved in var/dev-admin-password (DEBUG only)."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("dev_admin only runs with DEBUG=True; use createsuperuser elsewhere.")
        password_file = Path(settings.VAR_DIR) / "dev-admin-password"
        if User.objects.filter(email=DEV_ADMIN_EMAIL).exists() and password_file.exists():
            self.stdout.write(f"Staff login: {DEV_ADMIN_EMAIL}, password in {password_file}")
            return
        password = secrets.token_urlsafe(12)
        user = User.objects.filter(email=DEV_ADMIN_EMAIL).first()
        if user is None:
            user = User.objects.create_superuser(DEV_ADMIN_EMAIL, password, name="Dev Admin")
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        self.stdout.write(self.style.SUCCESS(f"Staff login: {DEV_ADMIN_EMAIL}, password in {password_file}"))
