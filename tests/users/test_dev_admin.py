import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.users.models import User

pytestmark = pytest.mark.django_db


def test_creates_the_login_and_keeps_it_in_step_with_the_password_file(settings, tmp_path):
    settings.DEBUG = True
    settings.VAR_DIR = tmp_path

    call_command("dev_admin")
    password = (tmp_path / "dev-admin-password").read_text().strip()
    admin = User.objects.get(email="admin@example.com")
    admin.set_password("changed-elsewhere-meanwhile")
    admin.save()
    call_command("dev_admin")  # e.g. another database was set up with this file meanwhile

    admin.refresh_from_db()
    assert admin.is_staff
    assert admin.is_superuser
    assert admin.check_password(password)
    assert (tmp_path / "dev-admin-password").stat().st_mode & 0o777 == 0o600


def test_refuses_outside_debug(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError):
        call_command("dev_admin")
