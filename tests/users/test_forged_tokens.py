"""API tokens are signed with JWT_SIGNING_KEY alone: a token forged with a key an attacker can guess (the
public development default, or DJANGO_SECRET_KEY, which also signs sessions and password resets) is a 401."""

import jwt
import pytest
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken

from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

ME = "/api/v1/users/me"
# The keys anyone can read: what docker-compose.yml and the development settings once fell back to.
PUBLIC_DEFAULTS = ["dev-only-insecure-key-never-use-in-production", "dev-only-insecure-jwt-key-never-use-in-production"]


def _signed_with(key: str, user) -> str:
    """A well-formed access token for `user` (every claim a real one carries), signed with `key`."""
    claims = dict(AccessToken.for_user(user).payload)
    return jwt.encode(claims, key, algorithm="HS256")


@pytest.mark.parametrize(
    "key", ["secret-key", *PUBLIC_DEFAULTS], ids=["django-secret-key", "old-compose-default", "dev-jwt-default"]
)
def test_a_token_forged_with_a_guessable_key_is_a_401(api_client, key):
    user = UserFactory(is_staff=True, is_superuser=True)
    key = settings.SECRET_KEY if key == "secret-key" else key
    assert key != settings.SIMPLE_JWT["SIGNING_KEY"]

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {_signed_with(key, user)}")
    forged = api_client.get(ME)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {_signed_with(settings.SIMPLE_JWT['SIGNING_KEY'], user)}")
    genuine = api_client.get(ME)

    assert forged.status_code == 401
    assert "email" not in forged.json()
    assert (genuine.status_code, genuine.json()["email"]) == (200, user.email)  # the same claims, the right key
