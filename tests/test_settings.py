import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = "k3Jx9-Qw0Zr2Tn8Vb5Lm1Yc7Hd4Gf6Sa0Pe3Ui9Oo2Kq5Wz8Xv1Rt4Ny7Mb6Cj"


def _boot(settings_module: str, code: str, **variables: str) -> subprocess.CompletedProcess:
    """Start Django in a fresh interpreter, as a deployment would, with only the given variables set."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "STRIPE_"))}
    environment.update(DJANGO_SETTINGS_MODULE=settings_module, **variables)
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "secret_key", [None, "", "short", "dev-only-insecure-key-never-use-in-production-at-all", "a" * 60]
)
def test_production_refuses_to_start_without_a_real_secret_key(secret_key):
    variables = {} if secret_key is None else {"DJANGO_SECRET_KEY": secret_key}

    result = _boot("config.settings.production", "pass", **variables)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_starts_with_a_real_secret_key_and_debug_off():
    result = _boot(
        "config.settings.production",
        "from django.conf import settings; print(settings.DEBUG)",
        DJANGO_SECRET_KEY=STRONG_KEY,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_stripe_sdk_follows_stripe_api_base_and_the_pinned_version():
    result = _boot(
        "config.settings.local",
        "import stripe; from djstripe.settings import djstripe_settings as d; "
        "print(stripe.api_base, stripe.api_version, d.STRIPE_API_VERSION)",
        STRIPE_API_BASE="http://127.0.0.1:12111/",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["http://127.0.0.1:12111", "2026-08-26.dahlia", "2026-08-26.dahlia"]
