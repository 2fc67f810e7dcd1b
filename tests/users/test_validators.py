"""`validate_deliverable_email` on its own: what Django's syntax check lets through but mail cannot reach.

The registration API's tests hold the common refusals (`localhost`, `.test`, `.invalid`, `.local`, an IP
literal, bad syntax); these are the cases around them."""

import pytest
from django.core.exceptions import ValidationError

from apps.users.validators import validate_deliverable_email


def refusal(address: str) -> ValidationError:
    with pytest.raises(ValidationError) as refused:
        validate_deliverable_email(address)
    return refused.value


@pytest.mark.parametrize(
    "address",
    [
        "ada@example.com",
        "ada.lovelace+orders@mail.example.co.uk",
        "a-b_c@sub-domain.example.org",
        "ada@xn--bcher-kva.de",
    ],
)
def test_ordinary_addresses_pass(address):
    validate_deliverable_email(address)


@pytest.mark.parametrize("address", ["ada@shop.TEST", "ada@Printer.Local", "ADA@MAIL.INVALID"])
def test_a_reserved_domain_is_refused_whatever_its_case(address):
    error = refusal(address)

    assert error.code == "undeliverable"
    assert f".{address.rpartition('.')[2].lower()} domains receive no mail." in error.messages[0]


@pytest.mark.parametrize("address", ["ada@docs.example", "ada@dev.localhost"])
def test_the_other_reserved_top_level_domains_are_refused(address):
    assert refusal(address).code == "undeliverable"


def test_a_domain_that_only_looks_reserved_passes():
    # Only the last label counts: these are ordinary domains someone registered.
    validate_deliverable_email("ada@test.example.com")
    validate_deliverable_email("ada@localhost.com")


def test_localhost_is_refused_though_django_lets_it_through():
    error = refusal("ada@localhost")

    assert error.code == "undeliverable"
    assert "the domain needs a dot" in error.messages[0]


def test_an_address_literal_is_refused_as_undeliverable_not_as_bad_syntax():
    error = refusal("ada@[192.0.2.1]")

    assert error.code == "undeliverable"
    assert "not an IP address" in error.messages[0]


@pytest.mark.parametrize("address", ["", "ada", "ada@", "@example.com", "ada@example.com."])
def test_what_is_not_an_address_fails_djangos_own_check_first(address):
    assert refusal(address).code == "invalid"
