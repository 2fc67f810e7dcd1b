"""The deploy check on the mail backend: a warning for each backend that keeps mail on the machine, and only
under `check --deploy` (a developer's console backend is fine)."""

import pytest
from django.core.checks import run_checks

from apps.mail.checks import check_mail_leaves_the_machine


@pytest.mark.parametrize(
    ("backend", "fate"),
    [
        ("django.core.mail.backends.filebased.EmailBackend", "written to files"),
        ("django.core.mail.backends.locmem.EmailBackend", "kept in memory"),
        ("django.core.mail.backends.dummy.EmailBackend", "dropped"),
    ],
)
def test_each_backend_that_keeps_mail_on_the_machine_is_named_in_the_warning(settings, backend, fate):
    settings.EMAIL_BACKEND = backend

    [warning] = check_mail_leaves_the_machine(None)

    assert warning.id == "mail.W001"
    assert fate in warning.msg
    assert "EMAIL_URL" in warning.hint


def test_a_backend_of_a_mail_provider_passes(settings):
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"

    assert check_mail_leaves_the_machine(None) == []


def test_the_warning_comes_with_check_deploy_only(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

    everyday = {message.id for message in run_checks(tags=["mail"], include_deployment_checks=False)}
    deploy = {message.id for message in run_checks(tags=["mail"], include_deployment_checks=True)}

    assert "mail.W001" not in everyday
    assert "mail.W001" in deploy
