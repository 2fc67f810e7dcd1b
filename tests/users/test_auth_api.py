import pytest
from rest_framework_simplejwt.tokens import AccessToken

from apps.users.models import User
from tests.helpers import client_for
from tests.users.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/token/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"
STRONG_PASSWORD = "a-long-unusual-passphrase-42"


class TestRegister:
    def test_creates_user_and_answers_public_fields_only(self, api_client):
        response = api_client.post(
            REGISTER, {"email": "Ada@Example.com", "password": STRONG_PASSWORD, "name": "Ada"}, format="json"
        )

        assert response.status_code == 201
        user = User.objects.get()
        assert response.json() == {"id": user.pk, "email": "ada@example.com", "name": "Ada"}
        assert user.check_password(STRONG_PASSWORD)

    def test_trailing_slash_is_accepted(self, api_client):
        response = api_client.post(
            REGISTER + "/", {"email": "b@example.com", "password": STRONG_PASSWORD}, format="json"
        )

        assert response.status_code == 201

    def test_taken_email_in_any_case_is_a_field_error(self, api_client):
        UserFactory(email="taken@example.com")

        response = api_client.post(REGISTER, {"email": "TAKEN@example.COM", "password": STRONG_PASSWORD}, format="json")

        assert response.status_code == 400
        assert response.json() == {"email": ["A user with this email address already exists."]}
        assert User.objects.count() == 1

    @pytest.mark.parametrize(
        ("password", "reason"),
        [
            ("short1", "too short"),
            ("password123", "too common"),
            ("83920174653", "entirely numeric"),
        ],
    )
    def test_django_password_validators_apply(self, api_client, password, reason):
        response = api_client.post(REGISTER, {"email": "p@example.com", "password": password}, format="json")

        assert response.status_code == 400
        assert any(reason in message for message in response.json()["password"])
        assert not User.objects.exists()

    def test_password_similar_to_email_is_refused(self, api_client):
        response = api_client.post(
            REGISTER, {"email": "margaretthatcher@example.com", "password": "margaretthatcher"}, format="json"
        )

        assert response.status_code == 400
        assert "password" in response.json()

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"password": STRONG_PASSWORD}, "email"),
            ({"email": "not-an-email", "password": STRONG_PASSWORD}, "email"),
            ({"email": "a@@example.com", "password": STRONG_PASSWORD}, "email"),
            ({"email": "x@example.com"}, "password"),
            ({"email": "x@example.com", "password": STRONG_PASSWORD, "name": "n" * 151}, "name"),
        ],
    )
    def test_bad_input_is_a_field_error(self, api_client, body, field):
        response = api_client.post(REGISTER, body, format="json")

        assert response.status_code == 400
        assert field in response.json()
        assert not User.objects.exists()

    @pytest.mark.parametrize(
        ("email", "reason"),
        [
            ("ada@localhost", "needs a dot"),
            ("ada@shop.test", ".test domains"),
            ("ada@mail.invalid", ".invalid domains"),
            ("ada@printer.local", ".local domains"),
            ("ada@[192.168.1.10]", "not an IP address"),
            ('"ada lovelace"@example.com', "valid email"),
            ("ädä@example.com", "valid email"),
            ("ada@exa_mple.com", "valid email"),
            ("ada@example.com\nBcc: eve@example.com", "valid email"),
        ],
        ids=["no-dot", "test-tld", "invalid-tld", "local-tld", "ip-literal", "quoted", "non-ascii", "underscore",
             "header-injection"],
    )  # fmt: skip
    def test_an_address_mail_cannot_reach_is_refused_at_registration(self, api_client, email, reason):
        from apps.mail.models import OutgoingMessage

        response = api_client.post(REGISTER, {"email": email, "password": STRONG_PASSWORD}, format="json")

        assert response.status_code == 400
        assert list(response.json()) == ["email"]
        assert reason in " ".join(response.json()["email"])
        assert not User.objects.exists()
        assert not OutgoingMessage.objects.exists()

    def test_an_international_domain_is_accepted(self, api_client):
        response = api_client.post(REGISTER, {"email": "ada@bücher.de", "password": STRONG_PASSWORD}, format="json")

        assert response.status_code == 201

    def test_body_that_is_not_json_is_400(self, api_client):
        response = api_client.post(REGISTER, "{not json", content_type="application/json")

        assert response.status_code == 400


class TestToken:
    def test_good_credentials_give_working_tokens(self, api_client, user):
        response = api_client.post(TOKEN, {"email": user.email.upper(), "password": TEST_PASSWORD}, format="json")

        assert response.status_code == 200
        tokens = response.json()
        assert set(tokens) == {"access", "refresh"}
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
        assert api_client.get(ME).json()["email"] == user.email

    @pytest.mark.parametrize("email", ["known", "unknown@example.com"])
    def test_bad_credentials_are_401_and_say_nothing_about_the_account(self, api_client, user, email):
        response = api_client.post(
            TOKEN, {"email": user.email if email == "known" else email, "password": "wrong-password"}, format="json"
        )

        assert response.status_code == 401
        assert "access" not in response.json()

    def test_inactive_user_gets_no_token(self, api_client):
        inactive = UserFactory(is_active=False)

        response = api_client.post(TOKEN, {"email": inactive.email, "password": TEST_PASSWORD}, format="json")

        assert response.status_code == 401

    def test_burst_of_bad_logins_for_one_account_is_throttled(self, api_client, user, settings):
        statuses = [
            api_client.post(TOKEN, {"email": user.email, "password": f"guess-{n}"}, format="json").status_code
            for n in range(7)
        ]

        assert statuses[:5] == [401] * 5
        assert statuses[5:] == [429, 429]
        # The right password does not open the door while the account is throttled.
        blocked = api_client.post(TOKEN, {"email": user.email, "password": TEST_PASSWORD}, format="json")
        assert blocked.status_code == 429
        assert int(blocked["Retry-After"]) > 0

    def test_one_address_trying_many_accounts_is_throttled(self, api_client):
        statuses = [
            api_client.post(TOKEN, {"email": f"victim{n}@example.com", "password": "guess"}, format="json").status_code
            for n in range(32)
        ]

        assert statuses[:30] == [401] * 30
        assert statuses[30:] == [429, 429]


class TestRefreshAndLogout:
    def _login(self, api_client, user) -> dict:
        return api_client.post(TOKEN, {"email": user.email, "password": TEST_PASSWORD}, format="json").json()

    def test_refresh_rotates_and_the_old_refresh_token_stops_working(self, api_client, user):
        tokens = self._login(api_client, user)

        rotated = api_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
        replayed = api_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")

        assert rotated.status_code == 200
        assert set(rotated.json()) == {"access", "refresh"}
        assert rotated.json()["refresh"] != tokens["refresh"]
        assert AccessToken(rotated.json()["access"])["user_id"] == str(user.pk)
        assert replayed.status_code == 401

    def test_logout_blacklists_the_refresh_token(self, api_client, user):
        tokens = self._login(api_client, user)

        logout = api_client.post(LOGOUT, {"refresh": tokens["refresh"]}, format="json")
        refresh_after = api_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
        logout_again = api_client.post(LOGOUT, {"refresh": tokens["refresh"]}, format="json")

        assert logout.status_code == 204
        assert refresh_after.status_code == 401
        assert logout_again.status_code == 401

    @pytest.mark.parametrize("token", ["garbage", ""])
    def test_bad_refresh_token_is_4xx_not_500(self, api_client, token):
        assert api_client.post(REFRESH, {"refresh": token}, format="json").status_code in (400, 401)
        assert api_client.post(LOGOUT, {"refresh": token}, format="json").status_code in (400, 401)

    def test_access_token_is_not_accepted_as_refresh_token(self, api_client, user):
        tokens = self._login(api_client, user)

        assert api_client.post(REFRESH, {"refresh": tokens["access"]}, format="json").status_code == 401


class TestMe:
    def test_requires_authentication(self, api_client):
        assert api_client.get(ME).status_code == 401

    def test_garbage_bearer_token_is_401(self, api_client):
        api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

        assert api_client.get(ME).status_code == 401

    def test_shows_own_profile(self, user_client, user):
        body = user_client.get(ME).json()

        assert body["id"] == user.pk
        assert body["email"] == user.email
        assert body["is_staff"] is False

    def test_patch_changes_name_and_email(self, user_client, user):
        response = user_client.patch(ME, {"name": "New Name", "email": "New@Example.com"}, format="json")

        assert response.status_code == 200
        user.refresh_from_db()
        assert (user.name, user.email) == ("New Name", "new@example.com")

    def test_patch_to_a_taken_email_is_a_field_error(self, user_client, user):
        UserFactory(email="other@example.com")

        response = user_client.patch(ME, {"email": "OTHER@example.com"}, format="json")

        assert response.status_code == 400
        assert "email" in response.json()
        user.refresh_from_db()
        assert user.email != "other@example.com"

    def test_patch_to_an_address_mail_cannot_reach_is_a_field_error(self, user_client, user):
        response = user_client.patch(ME, {"email": "ada@localhost"}, format="json")

        assert response.status_code == 400
        assert "needs a dot" in " ".join(response.json()["email"])
        user.refresh_from_db()
        assert user.email != "ada@localhost"

    def test_patch_cannot_make_a_user_staff(self, user_client, user):
        user_client.patch(ME, {"is_staff": True}, format="json")

        user.refresh_from_db()
        assert user.is_staff is False

    def test_delete_removes_the_account(self, user):
        response = client_for(user).delete(ME)

        assert response.status_code == 204
        assert not User.objects.filter(pk=user.pk).exists()
