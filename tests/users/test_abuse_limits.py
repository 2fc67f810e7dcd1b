"""Abuse costs the abuser, not everyone: per-client limits behind a proxy, one budget per auth endpoint,
a per-account limit that locks no one out for long, and sessions that end."""

import time

import pytest
from rest_framework_simplejwt.tokens import RefreshToken

from apps.users.services import user_delete
from tests.users.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/token/refresh"
REGISTER = "/api/v1/auth/register"
ME = "/api/v1/users/me"
PROXY = "10.0.0.2"  # every request reaches the app through this one reverse proxy


@pytest.fixture
def behind_proxy(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}


def _from(client_address: str) -> dict:
    return {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": client_address}


def _login(api_client, email: str, password: str, address: str = "198.51.100.7"):
    return api_client.post(TOKEN, {"email": email, "password": password}, **_from(address))


class TestLimitsCountTheClientNotTheProxy:
    def test_one_attacker_behind_the_proxy_blocks_only_itself(self, api_client, behind_proxy):
        user = UserFactory()
        attacker = [
            _login(api_client, f"victim{n}@example.com", "guess", address="203.0.113.9").status_code for n in range(31)
        ]

        everyone_else = _login(api_client, user.email, TEST_PASSWORD, address="198.51.100.7")

        assert attacker[:30] == [401] * 30
        assert attacker[30] == 429
        assert everyone_else.status_code == 200

    def test_without_the_proxy_count_the_proxy_is_one_client(self, api_client, settings):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 0}
        for n in range(30):
            _login(api_client, f"victim{n}@example.com", "guess", address="203.0.113.9")

        assert _login(api_client, UserFactory().email, TEST_PASSWORD, address="198.51.100.7").status_code == 429

    def test_login_register_and_refresh_have_budgets_of_their_own(self, api_client, behind_proxy):
        user = UserFactory()
        tokens = _login(api_client, user.email, TEST_PASSWORD, address="203.0.113.9").json()
        for n in range(29):
            _login(api_client, f"victim{n}@example.com", "guess", address="203.0.113.9")

        assert _login(api_client, "one-more@example.com", "guess", address="203.0.113.9").status_code == 429
        register = api_client.post(
            REGISTER, {"email": "new@example.com", "password": "a-long-unusual-passphrase-42"}, **_from("203.0.113.9")
        )
        refreshed = api_client.post(REFRESH, {"refresh": tokens["refresh"]}, **_from("203.0.113.9"))
        assert register.status_code == 201
        assert refreshed.status_code == 200


class TestGuessingOneAccount:
    def test_one_client_guessing_one_account_is_slowed_at_once(self, api_client, behind_proxy):
        user = UserFactory()

        guesses = [_login(api_client, user.email, f"guess-{n}", address="203.0.113.9").status_code for n in range(6)]

        assert guesses == [401] * 5 + [429]

    def test_an_attacker_elsewhere_cannot_lock_the_owner_out_for_long(self, api_client, behind_proxy):
        user = UserFactory()
        for address in ("203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"):
            for n in range(5):
                _login(api_client, user.email, f"guess-{n}", address=address)

        locked = _login(api_client, user.email, TEST_PASSWORD, address="198.51.100.7")

        # Twenty guesses from four addresses in a minute reach the per-account limit: it holds for at most
        # a minute after the last guess, then the owner logs in.
        assert locked.status_code == 429
        assert 0 < int(locked["Retry-After"]) <= 60

    def test_attempts_an_address_was_refused_do_not_count_against_the_account(self, api_client, behind_proxy):
        owner = UserFactory()
        for n in range(30):  # the attacker's address spends its own budget ...
            _login(api_client, f"filler{n}@example.com", "guess", address="203.0.113.9")
        for n in range(20):  # ... and everything after is refused before the owner's account is counted
            _login(api_client, owner.email, f"guess-{n}", address="203.0.113.9")

        assert _login(api_client, owner.email, TEST_PASSWORD, address="198.51.100.7").status_code == 200


class TestAdminLogin:
    def test_the_admin_login_is_limited_per_account_and_address(self, client):
        staff = UserFactory(is_staff=True)
        answers = [
            client.post("/admin/login/", {"username": staff.email, "password": f"guess-{n}"}).status_code
            for n in range(6)
        ]
        blocked = client.post("/admin/login/", {"username": staff.email, "password": TEST_PASSWORD})

        assert answers[:5] == [200] * 5  # the form again, with its error
        assert answers[5] == 429
        assert blocked.status_code == 429
        assert int(blocked["Retry-After"]) > 0


class TestSessionsEnd:
    def _tokens(self, api_client, user) -> dict:
        return _login(api_client, user.email, TEST_PASSWORD).json()

    def test_a_password_change_ends_every_token(self, api_client):
        user = UserFactory()
        tokens = self._tokens(api_client, user)
        user.set_password("another-long-passphrase-77")
        user.save()

        refreshed = api_client.post(REFRESH, {"refresh": tokens["refresh"]})
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
        me = api_client.get(ME)

        assert refreshed.status_code == 401
        assert "password was changed" in refreshed.json()["detail"]
        assert me.status_code == 401

    def test_refreshing_cannot_outlive_the_sessions_absolute_lifetime(self, api_client, settings):
        settings.JWT_SESSION_MAX_DAYS = 30
        user = UserFactory()
        old = RefreshToken.for_user(user)
        old["auth_time"] = int(time.time()) - 31 * 86400  # logged in 31 days ago, refreshed ever since
        fresh = self._tokens(api_client, user)

        assert api_client.post(REFRESH, {"refresh": str(old)}).status_code == 401
        assert api_client.post(REFRESH, {"refresh": fresh["refresh"]}).status_code == 200

    def test_rotation_keeps_the_login_time(self, api_client):
        user = UserFactory()
        first = self._tokens(api_client, user)

        rotated = api_client.post(REFRESH, {"refresh": first["refresh"]}).json()

        first_login = RefreshToken(first["refresh"], verify=False)["auth_time"]  # blacklisted by the rotation
        assert RefreshToken(rotated["refresh"])["auth_time"] == first_login

    def test_a_deleted_users_refresh_is_a_401_not_a_500(self, api_client):
        user = UserFactory()
        tokens = self._tokens(api_client, user)
        user_delete(user=user)

        answer = api_client.post(REFRESH, {"refresh": tokens["refresh"]})

        assert answer.status_code == 401
