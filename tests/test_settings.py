import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOT = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"


def _boot_production(secret_key: str | None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    environment["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    if secret_key is not None:
        environment["DJANGO_SECRET_KEY"] = secret_key
    return subprocess.run(
        [sys.executable, "-c", BOOT], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "secret_key", [None, "", "short", "dev-only-insecure-key-never-use-in-production-at-all", "a" * 60]
)
def test_production_refuses_to_start_without_a_real_secret_key(secret_key):
    result = _boot_production(secret_key)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_starts_with_a_real_secret_key_and_debug_off():
    result = _boot_production("k3Jx9-Qw0Zr2Tn8Vb5Lm1Yc7Hd4Gf6Sa0Pe3Ui9Oo2Kq5Wz8Xv1Rt4Ny7Mb6Cj")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
