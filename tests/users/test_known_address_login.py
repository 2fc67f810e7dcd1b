"""Guessing one account's password from many addresses slows the guessers, not the owner at home."""

import pytest

from tests.users.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.2"
ATTACKERS = ("203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5")


@pytest.fixture
def behind_proxy(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}


def _login(api_client, email: str, password: str, address: str):
    return api_client.post(
        "/api/v1/auth/token",
        {"email": email, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=address,
    )


def _guess_from_everywhere(api_client, email: str) -> None:
    for address in ATTACKERS:
        for n in range(5):
            _login(api_client, email, f"guess-{n}", address=address)


@pytest.mark.usefixtures("behind_proxy")
class TestTheOwnerDuringAnAttack:
    def test_the_owner_logs_in_from_an_address_they_used_before(self, api_client):
        owner = UserFactory()
        assert _login(api_client, owner.email, TEST_PASSWORD, address="198.51.100.7").status_code == 200

        _guess_from_everywhere(api_client, owner.email)

        assert _login(api_client, owner.email, TEST_PASSWORD, address="198.51.100.7").status_code == 200
        # The account's shared limit still holds everywhere else, the owner's new places included.
        assert _login(api_client, owner.email, TEST_PASSWORD, address="198.51.100.8").status_code == 429

    def test_a_known_address_still_has_its_own_limit(self, api_client):
        owner = UserFactory()
        assert _login(api_client, owner.email, TEST_PASSWORD, address="198.51.100.7").status_code == 200

        guesses = [_login(api_client, owner.email, f"guess-{n}", address="198.51.100.7").status_code for n in range(5)]

        assert guesses == [401] * 4 + [429]

    def test_a_failed_login_does_not_make_an_address_known(self, api_client):
        owner = UserFactory()
        _login(api_client, owner.email, "wrong", address="198.51.100.7")

        _guess_from_everywhere(api_client, owner.email)

        assert _login(api_client, owner.email, TEST_PASSWORD, address="198.51.100.7").status_code == 429

    def test_no_address_is_spared_when_turned_off(self, api_client, settings):
        settings.LOGIN_KNOWN_ADDRESS_DAYS = 0
        owner = UserFactory()
        assert _login(api_client, owner.email, TEST_PASSWORD, address="198.51.100.7").status_code == 200

        _guess_from_everywhere(api_client, owner.email)

        assert _login(api_client, owner.email, TEST_PASSWORD, address="198.51.100.7").status_code == 429


@pytest.mark.usefixtures("behind_proxy")
def test_an_operator_gets_into_the_admin_from_their_usual_address_during_an_attack(api_client, client):
    operator = UserFactory(is_staff=True)
    office = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    assert (
        client.post("/admin/login/", {"username": operator.email, "password": TEST_PASSWORD}, **office).status_code
        == 302
    )
    client.logout()

    _guess_from_everywhere(api_client, operator.email)

    back_in = client.post("/admin/login/", {"username": operator.email, "password": TEST_PASSWORD}, **office)
    elsewhere = client.post(
        "/admin/login/",
        {"username": operator.email, "password": TEST_PASSWORD},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="198.51.100.8",
    )
    assert back_in.status_code == 302
    assert elsewhere.status_code == 429


@pytest.mark.usefixtures("behind_proxy")
def test_someone_signed_in_cannot_make_their_address_known_for_another_account(api_client, client):
    operator = UserFactory(is_staff=True)
    owner = UserFactory(is_staff=True, is_superuser=True)
    attacker = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "203.0.113.66"}
    client.force_login(operator)

    wrong = client.post("/admin/login/", {"username": owner.email, "password": "guess"}, **attacker)
    _guess_from_everywhere(api_client, owner.email)

    assert wrong.status_code == 200  # the form again
    assert _login(api_client, owner.email, "guess-again", address="203.0.113.66").status_code == 429
