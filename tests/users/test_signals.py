"""The users app's signals as receivers get them: each with the arguments its documentation names, and
`email_verification_requested` once per request. (`test_services.py` holds when the other three are sent.)"""

import ast
import inspect
import re
from contextlib import ExitStack

import pytest
from django.dispatch import Signal

from apps.users import services, signals
from tests.signal_recorder import SignalRecorder
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-unusual-passphrase-42"


def documented_arguments(module) -> dict[str, set[str]]:
    """{signal name: the `names` its docstring lists after "Arguments:"} for each signal the module declares."""
    tree = ast.parse(inspect.getsource(module))
    documented = {}
    for statement, following in zip(tree.body, tree.body[1:], strict=False):
        if isinstance(statement, ast.Assign) and isinstance(following, ast.Expr):
            arguments = following.value.value.partition("Arguments:")[2].split(".")[0]
            documented[statement.targets[0].id] = set(re.findall(r"`(\w+)`", arguments))
    return documented


def test_every_signal_is_sent_with_exactly_the_arguments_its_documentation_names():
    documented = documented_arguments(signals)
    declared = {name for name, value in vars(signals).items() if isinstance(value, Signal)}
    with ExitStack() as stack:
        recorders = {name: stack.enter_context(SignalRecorder(getattr(signals, name))) for name in declared}
        user = services.user_create(email="ada@example.com", password=PASSWORD)
        services.user_update(user=user, data={"name": "Ada"})
        services.user_request_email_verification(user=user)
        services.user_delete(user=user)

    assert set(documented) == declared
    sent = {name: set(recorder.calls[0]) for name, recorder in recorders.items()}
    assert sent == documented


def test_each_request_for_the_link_is_told_apart_and_a_verified_address_asks_for_none():
    user = UserFactory()
    verified = UserFactory(email_verified=True)

    with SignalRecorder(signals.email_verification_requested) as recorder:
        services.user_request_email_verification(user=user)
        services.user_request_email_verification(user=user)
        services.user_request_email_verification(user=verified)

    assert [call["user_id"] for call in recorder.calls] == [user.pk, user.pk]
    assert recorder.calls[0]["request_id"] != recorder.calls[1]["request_id"]


def test_a_new_address_unverifies_the_account_and_asks_for_the_link_a_new_name_does_not():
    user = UserFactory(email_verified=True)

    with (
        SignalRecorder(signals.user_changed) as changed,
        SignalRecorder(signals.email_verification_requested) as requested,
    ):
        services.user_update(user=user, data={"name": "Someone Else"})
        services.user_update(user=user, data={"email": "new@example.com"})

    assert [call["fields"] for call in changed.calls] == [["name"], ["email", "email_verified"]]
    assert [call["user_id"] for call in requested.calls] == [user.pk]


def test_following_the_link_tells_of_the_verified_address_once():
    user = UserFactory()
    token = services.email_verification_token(user=user)

    with SignalRecorder(signals.user_changed) as recorder:
        services.user_verify_email(token=token)
        services.user_verify_email(token=token)

    assert recorder.calls == [{"user_id": user.pk, "fields": ["email_verified"]}]
