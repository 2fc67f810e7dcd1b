"""`manage.py check --deploy` on the Stripe setup (apps/payments/checks.py): a deployment that would send payments
to an emulator, run on a test key without saying so, accept forged events, pair keys of two modes, or send
customers back to any site is an error, each under its own id; a sound one has none.

Here the check called directly with settings changed in place. That production, Celery and the release step
refuse to start on these errors (a fresh interpreter per case, with the environment a deployment has) is in
tests/test_settings.py.
"""

import pytest
from django.core.checks import Tags, run_checks

from apps.payments.checks import check_stripe_is_stripe, check_stripe_rate_limits

LIVE_KEY = "sk_live_realKey00000000000000000000"
SIGNING_SECRET = "whsec_4eC39HqLyjWDarjtT1zdp7dc"


@pytest.fixture
def deployment(settings):
    """A sound production setup of Stripe."""
    settings.STRIPE_API_BASE = ""
    settings.STRIPE_SECRET_KEY = LIVE_KEY
    settings.STRIPE_PUBLISHABLE_KEY = "pk_live_realKey00000000000000000000"
    settings.STRIPE_TEST_MODE_ALLOWED = False
    settings.STRIPE_WEBHOOK_SECRETS = [SIGNING_SECRET]
    settings.CHECKOUT_REDIRECT_HOSTS = ["shop.example.com"]
    return settings


def _ids() -> list[str]:
    return [error.id for error in check_stripe_is_stripe(None)]


def test_a_sound_live_setup_has_no_error(deployment):
    assert check_stripe_is_stripe(None) == []


@pytest.mark.parametrize("base", ["", "https://api.stripe.com"])
def test_stripes_own_address_or_none_is_stripe(deployment, base):
    deployment.STRIPE_API_BASE = base

    assert _ids() == []


def test_a_restricted_live_key_is_a_live_key(deployment):
    deployment.STRIPE_SECRET_KEY = "rk_live_restricted000000000000000000"

    assert _ids() == []


def test_a_test_key_on_purpose_pairs_with_a_test_publishable_key(deployment):
    deployment.STRIPE_SECRET_KEY = "sk_test_staging0000000000000000000000"
    deployment.STRIPE_TEST_MODE_ALLOWED = True
    deployment.STRIPE_PUBLISHABLE_KEY = "pk_test_staging0000000000000000000000"

    assert _ids() == []


def test_a_test_key_with_a_live_publishable_key_is_two_modes(deployment):
    deployment.STRIPE_SECRET_KEY = "sk_test_staging0000000000000000000000"
    deployment.STRIPE_TEST_MODE_ALLOWED = True

    [error] = check_stripe_is_stripe(None)

    assert error.id == "payments.E006"
    assert "not a pk_test_... key" in error.msg


def test_no_publishable_key_is_no_error_apps_just_cannot_pay(deployment):
    deployment.STRIPE_PUBLISHABLE_KEY = ""

    assert _ids() == []


@pytest.mark.parametrize("hosts", [["*"], [".com"], ["shop.example.com", "*.example.com"], [".org"]])
def test_redirect_hosts_that_admit_any_site_are_an_open_redirect(deployment, hosts):
    deployment.CHECKOUT_REDIRECT_HOSTS = hosts

    [error] = check_stripe_is_stripe(None)

    assert error.id == "payments.E005"
    wide = [host for host in hosts if host != "shop.example.com"]
    assert all(repr(host) in error.msg for host in wide)
    assert "'shop.example.com'" not in error.msg


def test_the_shops_own_domain_and_its_subdomains_are_not_too_wide(deployment):
    deployment.CHECKOUT_REDIRECT_HOSTS = ["shop.example.com", ".example.com", "localhost"]

    assert _ids() == []


@pytest.mark.parametrize(
    "secrets",
    [[], [SIGNING_SECRET, "whsec_short"], [SIGNING_SECRET, "not-a-signing-secret-at-all"]],
    ids=["none", "one-too-short", "one-not-stripes"],
)
def test_any_signing_secret_that_is_not_stripes_is_an_error(deployment, secrets):
    deployment.STRIPE_WEBHOOK_SECRETS = secrets

    assert _ids() == ["payments.E004"]


def test_two_secrets_while_one_is_rolled_over_are_fine(deployment):
    deployment.STRIPE_WEBHOOK_SECRETS = [SIGNING_SECRET, "whsec_nextSecretRolledOver00000"]

    assert _ids() == []


def test_every_problem_is_told_at_once_each_with_a_hint(deployment):
    deployment.STRIPE_API_BASE = "http://stripe-emulator:12111"
    deployment.STRIPE_SECRET_KEY = "sk_test_localEmulatorKey000000000000"
    deployment.CHECKOUT_REDIRECT_HOSTS = ["*"]
    deployment.STRIPE_WEBHOOK_SECRETS = []

    errors = check_stripe_is_stripe(None)

    assert [error.id for error in errors] == [
        "payments.E001",
        "payments.E003",
        "payments.E005",
        "payments.E006",
        "payments.E004",
    ]
    assert all(error.hint for error in errors)
    assert "http://stripe-emulator:12111" in errors[0].msg


def test_it_runs_only_when_a_deployment_is_checked(deployment):
    deployment.STRIPE_SECRET_KEY = ""

    development = [error.id for error in run_checks(tags=[Tags.security])]
    deploy = [error.id for error in run_checks(tags=[Tags.security], include_deployment_checks=True)]

    assert "payments.E002" not in development
    assert "payments.E002" in deploy


@pytest.mark.parametrize("name", ["STRIPE_RATE_LIMIT_PER_SECOND", "STRIPE_RATE_LIMIT_PER_ENDPOINT"])
@pytest.mark.parametrize("rate", [0, -5])
def test_a_rate_limit_of_nothing_is_an_error_in_every_mode(settings, name, rate):
    setattr(settings, name, rate)

    errors = check_stripe_rate_limits(None)

    assert [(error.id, error.msg.split(" is ")[0]) for error in errors] == [("payments.E007", name)]


def test_the_default_rate_limits_pass():
    assert check_stripe_rate_limits(None) == []


def test_the_rate_limits_are_checked_without_deploy(db, settings):
    settings.STRIPE_RATE_LIMIT_PER_ENDPOINT = 0

    assert "payments.E007" in [error.id for error in run_checks()]
