import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

# Every test here starts the project in a fresh interpreter, as a deployment would: `make test` runs them,
# `make check` (in-process tests only) leaves them out.
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = "k3Jx9-Qw0Zr2Tn8Vb5Lm1Yc7Hd4Gf6Sa0Pe3Ui9Oo2Kq5Wz8Xv1Rt4Ny7Mb6Cj"
STRONG_JWT_KEY = "Zq8Lm3Xv0Rt6Yb1Nw4Kc9Hd2Gf7Sa5Pe0Ui3Oo8Kq1Wz6Jx4Bv9Tn2Mr7Cl5Dh"
# What a real deployment sets: `check --deploy` and the processes' start are clean with these.
REAL = {
    "DJANGO_SECRET_KEY": STRONG_KEY,
    "JWT_SIGNING_KEY": STRONG_JWT_KEY,
    "STRIPE_SECRET_KEY": "sk_live_51Hx0000RealLookingLiveKey000000000000",
    "STRIPE_WEBHOOK_SECRET": "whsec_4eC39HqLyjWDarjtT1zdp7dcRealLooking",
    "EMAIL_URL": "smtp+tls://mailer:password@smtp.example.com:587",
    "DATABASE_URL": "postgres:///postgres",
}


def _clean_environment() -> dict[str, str]:
    """This machine's environment without any of the settings the tests set themselves."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "STRIPE_", "JWT_", "EMAIL_URL"))
    }


def _run(*argv: str, settings_module: str = "config.settings.production", **variables: str):
    """A command of the project in a fresh process, as a deployment would start it, with only these variables."""
    environment = {**_clean_environment(), "DJANGO_SETTINGS_MODULE": settings_module, **variables}
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60, check=False
    )


def _boot(settings_module: str, code: str, **variables: str) -> subprocess.CompletedProcess:
    """Start Django in a fresh interpreter with only the given variables set."""
    return _run("-c", f"import django; django.setup(); {code}", settings_module=settings_module, **variables)


@pytest.mark.parametrize(
    "secret_key", [None, "", "short", "dev-only-insecure-key-never-use-in-production-at-all", "a" * 60]
)
def test_production_refuses_to_start_without_a_real_secret_key(secret_key):
    variables = {k: v for k, v in REAL.items() if k != "DJANGO_SECRET_KEY"}
    if secret_key is not None:
        variables["DJANGO_SECRET_KEY"] = secret_key

    result = _boot("config.settings.production", "pass", **variables)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_starts_with_a_real_secret_key_and_debug_off():
    result = _boot("config.settings.production", "from django.conf import settings; print(settings.DEBUG)", **REAL)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def _check_deploy(**variables: str) -> subprocess.CompletedProcess:
    return _run("manage.py", "check", "--deploy", "--fail-level", "ERROR", **variables)


def test_check_deploy_is_clean_with_real_values():
    result = _check_deploy(**REAL)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"STRIPE_API_BASE": "http://stripe-emulator:12111"}, "payments.E001"),
        ({"STRIPE_SECRET_KEY": ""}, "payments.E002"),
        ({"STRIPE_SECRET_KEY": "pk_live_publishableNotSecret000000"}, "payments.E002"),
        ({"STRIPE_SECRET_KEY": "sk_test_localEmulatorKey000000000000"}, "payments.E003"),
        ({"STRIPE_SECRET_KEY": "rk_test_restrictedTestKey00000000000"}, "payments.E003"),
        ({"STRIPE_WEBHOOK_SECRET": ""}, "payments.E004"),
        ({"STRIPE_PUBLISHABLE_KEY": "pk_test_localEmulatorKey000000000000"}, "payments.E006"),
        ({"STRIPE_PUBLISHABLE_KEY": "sk_live_notPublishable00000000000000"}, "payments.E006"),
    ],
)
def test_check_deploy_errors_on_an_unsafe_stripe_setup(change, error):
    result = _check_deploy(**{**REAL, **change})

    assert result.returncode == 1
    assert error in result.stderr


def test_a_test_key_is_allowed_only_on_purpose():
    variables = {**REAL, "STRIPE_SECRET_KEY": "sk_test_stagingKey0000000000000000"}

    assert _check_deploy(**variables).returncode == 1
    assert _check_deploy(**variables, STRIPE_TEST_MODE_ALLOWED="true").returncode == 0


@pytest.mark.parametrize(
    ("jwt_key", "message"),
    [
        (None, "JWT_SIGNING_KEY must be set"),
        ("short", "JWT_SIGNING_KEY is too weak"),
        (STRONG_KEY, "JWT_SIGNING_KEY must differ from DJANGO_SECRET_KEY"),
    ],
)
def test_production_requires_a_jwt_signing_key_of_its_own(jwt_key, message):
    variables = {k: v for k, v in REAL.items() if k != "JWT_SIGNING_KEY"}
    if jwt_key is not None:
        variables["JWT_SIGNING_KEY"] = jwt_key

    result = _boot("config.settings.production", "pass", **variables)

    assert result.returncode != 0
    assert message in result.stderr


def test_tokens_are_signed_with_the_jwt_key_not_the_secret_key():
    result = _boot(
        "config.settings.production",
        "from django.conf import settings; print(settings.SIMPLE_JWT['SIGNING_KEY'] == settings.SECRET_KEY, "
        "settings.SIMPLE_JWT['SIGNING_KEY'] == settings.JWT_SIGNING_KEY)",
        **REAL,
    )

    assert result.stdout.split() == ["False", "True"], result.stderr


@pytest.mark.parametrize(
    ("behind_proxy", "num_proxies", "expected"),
    [
        (None, None, "None 0"),
        ("true", None, "('HTTP_X_FORWARDED_PROTO', 'https') 1"),
        ("true", "", "('HTTP_X_FORWARDED_PROTO', 'https') 1"),  # compose passes an unset variable as empty
        ("true", "2", "('HTTP_X_FORWARDED_PROTO', 'https') 2"),  # a CDN in front of the proxy
    ],
    ids=["no-proxy", "one-proxy", "one-proxy-empty-count", "two-proxies"],
)
def test_forwarded_headers_are_believed_only_behind_a_proxy(behind_proxy, num_proxies, expected):
    variables = dict(REAL)
    if behind_proxy:
        variables["DJANGO_BEHIND_PROXY"] = behind_proxy
    if num_proxies is not None:
        variables["DJANGO_NUM_PROXIES"] = num_proxies

    result = _boot(
        "config.settings.production",
        "from django.conf import settings; print(settings.SECURE_PROXY_SSL_HEADER, "
        "settings.REST_FRAMEWORK['NUM_PROXIES'])",
        **variables,
    )

    assert result.stdout.strip() == expected, result.stderr


def test_checkout_redirect_hosts_default_to_the_sites_own_host():
    """Nothing but SITE_URL set: checkout sends customers back to the shop's own host, and only there."""
    result = _boot(
        "config.settings.production",
        "from django.conf import settings; from rest_framework.exceptions import ValidationError\n"
        "from apps.payments.orders.serializers import RedirectUrlField\n"
        "print(settings.CHECKOUT_REDIRECT_HOSTS)\n"
        "for url in ('https://shop.example.com/thanks', 'https://evil.example/thanks'):\n"
        "    try:\n"
        "        RedirectUrlField().run_validation(url)\n"
        "        print('accepted', url)\n"
        "    except ValidationError:\n"
        "        print('refused', url)",
        **REAL,
        SITE_URL="https://shop.example.com",
    )

    assert result.stdout.splitlines() == [
        "['shop.example.com']",
        "accepted https://shop.example.com/thanks",
        "refused https://evil.example/thanks",
    ], result.stderr


def test_webhook_bodies_are_limited_to_256_kib_by_default():
    result = _boot(
        "config.settings.production",
        "from django.conf import settings; print(settings.STRIPE_WEBHOOK_MAX_BYTES)",
        **REAL,
    )

    assert result.stdout.strip() == "262144", result.stderr


def test_hsts_is_one_year():
    result = _boot(
        "config.settings.production", "from django.conf import settings; print(settings.SECURE_HSTS_SECONDS)", **REAL
    )

    assert result.stdout.strip() == "31536000", result.stderr


@pytest.mark.parametrize(
    "secrets",
    [
        "whsec_4eC39HqLyjWDarjtT1zdp7dc, ",
        ",whsec_4eC39HqLyjWDarjtT1zdp7dc",
        "whsec_short",
        "not-a-secret-at-all-really",
    ],
)
def test_a_blank_or_malformed_webhook_secret_stops_the_start(secrets):
    result = _boot("config.settings.local", "pass", STRIPE_WEBHOOK_SECRET=secrets)

    assert result.returncode != 0
    assert "STRIPE_WEBHOOK_SECRET" in result.stderr


def test_webhook_secrets_are_stripped():
    result = _boot(
        "config.settings.local",
        "from django.conf import settings; print(settings.STRIPE_WEBHOOK_SECRETS)",
        STRIPE_WEBHOOK_SECRET=" whsec_4eC39HqLyjWDarjtT1zdp7dc , whsec_nextSecretRolledOver00000 ",
    )

    assert result.stdout.strip() == "['whsec_4eC39HqLyjWDarjtT1zdp7dc', 'whsec_nextSecretRolledOver00000']"


@pytest.mark.parametrize("entry", ["config.wsgi", "config.asgi"])
def test_production_processes_refuse_to_start_on_a_deploy_error(entry):
    unsafe = {**REAL, "STRIPE_API_BASE": "http://stripe-emulator:12111"}

    refused = _boot("config.settings.production", f"import {entry}", **unsafe)
    started = _boot("config.settings.production", f"import {entry}", **REAL)

    assert refused.returncode != 0
    assert "Refusing to start" in refused.stderr
    assert "payments.E001" in refused.stderr
    assert started.returncode == 0, started.stderr


@pytest.mark.parametrize("process", ["worker", "beat"])
def test_celery_refuses_to_start_on_a_deploy_error(process, tmp_path):
    unsafe = {**REAL, "STRIPE_SECRET_KEY": "sk_test_localEmulatorKey000000000000"}
    options = ["--schedule", str(tmp_path / "beat")] if process == "beat" else ["--pool", "solo"]

    result = _run(
        "-m", "celery", "-A", "config", process, *options, CELERY_BROKER_URL=settings.CELERY_BROKER_URL, **unsafe
    )

    assert result.returncode != 0
    assert "payments.E003" in result.stderr


def test_the_release_step_refuses_an_unsafe_deployment():
    refused = _run("-m", "config.deploy", **{**REAL, "STRIPE_SECRET_KEY": "sk_test_localEmulatorKey000000000000"})
    passed = _run("-m", "config.deploy", **REAL)

    assert refused.returncode != 0
    assert "payments.E003" in refused.stderr
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.strip() == "deployment checks passed"


def test_stripe_sdk_follows_stripe_api_base_and_the_pinned_version():
    result = _boot(
        "config.settings.local",
        "import stripe; from djstripe.settings import djstripe_settings as d; "
        "print(stripe.api_base, stripe.api_version, d.STRIPE_API_VERSION)",
        STRIPE_API_BASE="http://127.0.0.1:12111/",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["http://127.0.0.1:12111", "2026-08-26.dahlia", "2026-08-26.dahlia"]


def test_the_dev_admin_of_make_run_never_runs_in_production():
    result = _run("manage.py", "dev_admin", **REAL)

    assert result.returncode != 0
    assert "dev_admin only runs with DEBUG=True" in result.stderr


def test_development_settings_with_debug_off_refuse_to_serve():
    """A server started on a `.env` copied from compose.dev.env: test keys, the emulator, no HTTPS."""
    refused = _boot("config.settings.local", "import config.wsgi", DJANGO_DEBUG="false")
    developing = _boot("config.settings.local", "import config.wsgi", DJANGO_DEBUG="true")

    assert refused.returncode != 0
    assert "development settings (config.settings.local) with DEBUG off" in refused.stderr
    assert developing.returncode == 0, developing.stderr


def test_stripe_api_base_is_normalised():
    result = _boot(
        "config.settings.production",
        "from django.conf import settings; print(repr(settings.STRIPE_API_BASE))",
        **REAL,
        STRIPE_API_BASE=" https://api.stripe.com/ ",
    )

    assert result.stdout.strip() == "'https://api.stripe.com'", result.stderr


@pytest.mark.parametrize("hosts", ["*", ".com", "shop.example.com,*"])
def test_check_deploy_errors_on_redirect_hosts_that_admit_any_site(hosts):
    result = _check_deploy(**REAL, CHECKOUT_REDIRECT_HOSTS=hosts)

    assert result.returncode == 1
    assert "payments.E005" in result.stderr


def _production_start_that_records(watch: str, **variables: str) -> subprocess.CompletedProcess:
    """Production settings loaded in a fresh process, with `watch` (Python) run first to record what loading does."""
    code = f"{watch}\nimport django\ndjango.setup()\nprint('started')"
    return _run("-c", code, **{**REAL, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15", **variables})


def test_loading_the_production_settings_creates_no_directory():
    refuse_mkdir = (
        "import pathlib\n"
        "def refuse(path, *args, **kwargs):\n"
        "    raise SystemExit(f'created a directory: {path}')\n"
        "pathlib.Path.mkdir = refuse"
    )

    result = _production_start_that_records(refuse_mkdir)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"


@pytest.mark.parametrize(("asked", "reads"), [(None, 0), ("false", 0), ("true", 1)])
def test_a_dot_env_file_is_read_only_when_asked(asked, reads):
    count_reads = (
        "import environ, atexit\n"
        "reads = []\n"
        "environ.Env.read_env = classmethod(lambda cls, *args, **kwargs: reads.append(args))\n"
        "atexit.register(lambda: print('reads', len(reads)))"
    )
    variables = {"DJANGO_READ_DOT_ENV_FILE": asked} if asked is not None else {}

    result = _production_start_that_records(count_reads, **variables)

    assert result.returncode == 0, result.stderr
    assert f"reads {reads}" in result.stdout


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, "redis://127.0.0.1:6379/15"),  # the broker, when it is Redis
        ({"COORDINATION_REDIS_URL": "redis://127.0.0.1:6379/3"}, "redis://127.0.0.1:6379/3"),
        ({"STRIPE_BUDGET_REDIS_URL": "redis://127.0.0.1:6379/4"}, "redis://127.0.0.1:6379/4"),  # its earlier name
        ({"STRIPE_BUDGET_REDIS_URL": ""}, ""),  # set empty on purpose: each process on its own, as before
    ],
    ids=["broker", "named", "earlier-name", "earlier-name-empty"],
)
def test_where_processes_coordinate(variables, expected):
    result = _boot(
        "config.settings.production",
        "from django.conf import settings; print(repr(settings.COORDINATION_REDIS_URL))",
        **{**REAL, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15", **variables},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(expected)


@pytest.mark.parametrize(("pooling", "without_cursors"), [("", "False"), ("true", "True")])
def test_behind_a_transaction_pooler_no_server_side_cursor_is_opened(pooling, without_cursors):
    # A cursor declared on one PostgreSQL session would be read on another one a moment later behind PgBouncer.
    variables = {**REAL, **({"DATABASE_TRANSACTION_POOLING": pooling} if pooling else {})}
    result = _boot(
        "config.settings.production",
        "from django.conf import settings; print(settings.DATABASES['default']['DISABLE_SERVER_SIDE_CURSORS'])",
        **variables,
    )

    assert result.stdout.strip() == without_cursors, result.stderr
