"""A user proves they own their address by following the link mailed to it; nothing else marks it verified."""

import re
from urllib.parse import urlsplit

import pytest
from django.core import signing

from apps.mail.models import MessageKind, OutgoingMessage
from apps.users.models import User
from apps.users.services import EMAIL_VERIFICATION_SALT
from tests.helpers import client_for

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
VERIFY = "/api/v1/auth/verify-email"
RESEND = "/api/v1/auth/verify-email/resend"
ME = "/api/v1/users/me"
PASSWORD = "a-long-unusual-passphrase-42"


def _link_in(message: OutgoingMessage) -> str:
    """The verification link as the recipient sees it, made into a path this test client can open."""
    url = re.search(r"https?://\S+verify-email\?token=\S+", message.body_text)[0]
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _register(api_client, email="ada@example.com") -> User:
    answer = api_client.post(REGISTER, {"email": email, "password": PASSWORD, "name": "Ada"}, format="json")
    assert answer.status_code == 201
    return User.objects.get(email=email)


def test_the_welcome_mail_carries_a_link_that_verifies_the_address(api_client):
    user = _register(api_client)
    welcome = OutgoingMessage.objects.get(kind=MessageKind.WELCOME)
    before = client_for(user).get(ME).json()

    opened = api_client.get(_link_in(welcome))

    assert before["email_verified"] is False
    assert opened.status_code == 200
    assert opened.json() == {"email": "ada@example.com", "email_verified": True}
    assert client_for(user).get(ME).json()["email_verified"] is True
    assert welcome.body_html.count("verify-email?token=") == 1
    assert api_client.get(_link_in(welcome)).status_code == 200  # a second click changes nothing


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        signing.dumps({"user": 1, "email": "ada@example.com"}, salt="another.purpose"),
        signing.dumps({"user": 1, "email": "ada@example.com"}, salt=EMAIL_VERIFICATION_SALT, key="x" * 50),
    ],
    ids=["garbage", "other-salt", "other-key"],
)
def test_a_forged_token_is_a_400_and_verifies_nothing(api_client, token):
    user = _register(api_client)

    answer = api_client.post(VERIFY, {"token": token}, format="json")

    assert answer.status_code == 400
    assert "token" in answer.json()
    user.refresh_from_db()
    assert user.email_verified is False


def test_an_address_changed_since_the_link_was_sent_is_not_verified_by_it(api_client):
    user = _register(api_client)
    old_link = _link_in(OutgoingMessage.objects.get(kind=MessageKind.WELCOME))
    client = client_for(user)

    client.patch(ME, {"email": "ada.new@example.com"}, format="json")
    stale = api_client.get(old_link)

    assert stale.status_code == 400
    assert "no longer has" in str(stale.json()["token"])
    user.refresh_from_db()
    assert (user.email, user.email_verified) == ("ada.new@example.com", False)
    fresh = OutgoingMessage.objects.get(kind=MessageKind.VERIFY_EMAIL)
    assert fresh.recipient == "ada.new@example.com"
    assert api_client.get(_link_in(fresh)).json() == {"email": "ada.new@example.com", "email_verified": True}


def test_changing_a_verified_address_makes_it_unverified_until_the_new_link_is_followed(api_client):
    user = _register(api_client)
    api_client.get(_link_in(OutgoingMessage.objects.get(kind=MessageKind.WELCOME)))

    client_for(user).patch(ME, {"email": "ada.new@example.com"}, format="json")

    assert client_for(user).get(ME).json()["email_verified"] is False


def test_an_expired_link_asks_for_a_new_one(api_client, monkeypatch):
    user = _register(api_client)
    link = _link_in(OutgoingMessage.objects.get(kind=MessageKind.WELCOME))
    real_time = signing.time.time
    monkeypatch.setattr(signing.time, "time", lambda: real_time() + 8 * 24 * 3600)

    answer = api_client.get(link)

    assert answer.status_code == 400
    assert "expired" in str(answer.json()["token"])
    user.refresh_from_db()
    assert user.email_verified is False


def test_resend_mails_a_new_link_and_is_throttled(api_client):
    user = _register(api_client)
    client = client_for(user)

    answers = [client.post(RESEND).status_code for _ in range(6)]

    assert answers == [202] * 5 + [429]
    assert OutgoingMessage.objects.filter(kind=MessageKind.VERIFY_EMAIL).count() == 5
    assert api_client.post(RESEND).status_code == 401


def test_resend_sends_nothing_once_verified(api_client):
    user = _register(api_client)
    api_client.get(_link_in(OutgoingMessage.objects.get(kind=MessageKind.WELCOME)))

    answer = client_for(user).post(RESEND)

    assert (answer.status_code, answer.json()["email_verified"]) == (200, True)
    assert not OutgoingMessage.objects.filter(kind=MessageKind.VERIFY_EMAIL).exists()
