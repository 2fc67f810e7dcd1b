"""The login limits' parts on their own, with low rates so each test reads its own numbers. The API's and the
admin's tests (test_abuse_limits.py, test_known_address_login.py) hold what a client sees over HTTP."""

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apps.users.throttles import VerificationMailThrottle, login_email, login_refused_for, login_succeeded
from tests.users.factories import UserFactory

HOME = "198.51.100.7"
ELSEWHERE = ("203.0.113.1", "203.0.113.2", "203.0.113.3")


@pytest.fixture
def rates(settings):
    """Set some rates low; the others keep the project's defaults."""

    def set_rates(**low: str) -> None:
        framework = settings.REST_FRAMEWORK
        settings.REST_FRAMEWORK = {
            **framework,
            "DEFAULT_THROTTLE_RATES": {**framework["DEFAULT_THROTTLE_RATES"], **low},
        }

    return set_rates


def api_login(body, address: str = HOME) -> Request:
    """A login as the API's view receives it: a JSON body, parsed by DRF."""
    raw = APIRequestFactory().post("/api/v1/auth/token", body, format="json", REMOTE_ADDR=address)
    return Request(raw, parsers=[JSONParser()])


def admin_login(username: str, address: str = HOME):
    """A login as the admin receives it: a plain Django request with a form."""
    return RequestFactory().post("/admin/login/", {"username": username, "password": "x"}, REMOTE_ADDR=address)


class TestLoginEmail:
    def test_one_account_however_it_is_typed_and_wherever_it_is_typed(self):
        typed = {
            login_email(api_login({"email": "ada@example.com"})),
            login_email(api_login({"email": "  ADA@Example.com "})),
            login_email(admin_login("Ada@EXAMPLE.com")),
        }

        assert len(typed) == 1
        assert login_email(api_login({"email": "grace@example.com"})) not in typed

    def test_the_address_itself_is_not_what_is_counted(self):
        counted = login_email(api_login({"email": "ada@example.com"}))

        assert "ada" not in counted
        assert "example" not in counted

    @pytest.mark.parametrize(
        "body",
        [{}, {"email": ""}, {"email": "   "}, {"email": 42}, {"email": ["ada@example.com"]}, ["ada@example.com"]],
        ids=["missing", "empty", "blank", "number", "list", "body-is-a-list"],
    )
    def test_a_login_that_names_no_account_counts_against_no_account(self, body):
        assert login_email(api_login(body)) is None


@pytest.mark.django_db
class TestLoginRefusedFor:
    def test_attempts_that_name_no_account_are_held_by_the_addresss_limit_alone(self, rates):
        rates(login="3/minute", login_email="1/minute", login_email_address="1/minute")

        answers = [login_refused_for(api_login({"password": "x"})) for _ in range(4)]

        assert answers[:3] == [None, None, None]
        assert 0 < answers[3] <= 60

    def test_an_address_is_known_for_the_account_that_logged_in_from_it_only(self, rates):
        rates(login_email="2/minute")
        login_succeeded(api_login({"email": "ada@example.com"}), email="ada@example.com")
        for address in ELSEWHERE[:2]:  # both accounts guessed from elsewhere, past the per-account limit
            for email in ("ada@example.com", "grace@example.com"):
                login_refused_for(api_login({"email": email}, address=address))

        ada_at_home = login_refused_for(api_login({"email": "ada@example.com"}))
        grace_at_adas = login_refused_for(api_login({"email": "grace@example.com"}))

        assert ada_at_home is None
        assert grace_at_adas is not None

    def test_the_admin_form_and_the_api_share_one_accounts_budget(self, rates):
        rates(login_email="2/minute")

        login_refused_for(api_login({"email": "ada@example.com"}, address=ELSEWHERE[0]))
        login_refused_for(admin_login("ada@example.com", address=ELSEWHERE[1]))

        assert login_refused_for(api_login({"email": "ada@example.com"}, address=ELSEWHERE[2])) is not None

    def test_the_cache_holds_no_address_anyone_tried(self):
        address = "someone.tried-this@example.com"
        for network_address in ELSEWHERE:
            login_refused_for(api_login({"email": address}, address=network_address))
        login_succeeded(api_login({"email": address}), email=address)

        client = cache._cache.get_client()
        stored = [key.decode() for key in client.keys("*")]
        stored += [str(client.get(key)) for key in client.keys("*")]
        assert not [entry for entry in stored if "someone.tried-this" in entry]


@pytest.mark.django_db
def test_asking_for_the_verification_link_again_is_limited_per_user(rates):
    rates(verification_mail="1/hour")
    ada, grace = UserFactory(), UserFactory()

    def asks(user) -> bool:
        request = RequestFactory().post("/api/v1/users/me/verify-email", REMOTE_ADDR=HOME)
        request.user = user
        return VerificationMailThrottle().allow_request(request, None)

    assert [asks(ada), asks(ada), asks(grace)] == [True, False, True]
