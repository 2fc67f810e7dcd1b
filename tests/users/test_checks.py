"""The deploy check on the key that signs API tokens: an error for any key someone could know or guess."""

import pytest
from django.core.checks import Tags, run_checks

from apps.users.checks import MIN_SIGNING_KEY_LENGTH, check_jwt_signing_key


@pytest.fixture
def signing_key(settings):
    def use(key) -> None:
        settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "SIGNING_KEY": key}

    return use


def errors() -> list[str]:
    return [error.id for error in check_jwt_signing_key(None)]


def test_a_long_key_of_its_own_passes(settings, signing_key):
    signing_key("k" * MIN_SIGNING_KEY_LENGTH)

    assert errors() == []


@pytest.mark.parametrize(
    "key",
    [None, "", "k" * (MIN_SIGNING_KEY_LENGTH - 1), "dev-" + "k" * MIN_SIGNING_KEY_LENGTH],
    ids=["missing", "empty", "one-short", "development-key"],
)
def test_a_key_someone_could_guess_is_an_error(settings, signing_key, key):
    signing_key(key)

    assert errors() == ["users.E001"]


def test_the_django_secret_key_reused_is_an_error_however_long(settings, signing_key):
    settings.SECRET_KEY = "s" * 80
    signing_key("s" * 80)

    assert errors() == ["users.E001"]


def test_the_error_says_what_to_set(settings, signing_key):
    signing_key("")

    [error] = check_jwt_signing_key(None)

    assert "JWT_SIGNING_KEY" in error.hint


def test_the_error_comes_with_check_deploy_only(settings, signing_key):
    signing_key("")

    everyday = {message.id for message in run_checks(tags=[Tags.security], include_deployment_checks=False)}
    deploy = {message.id for message in run_checks(tags=[Tags.security], include_deployment_checks=True)}

    assert "users.E001" not in everyday
    assert "users.E001" in deploy
