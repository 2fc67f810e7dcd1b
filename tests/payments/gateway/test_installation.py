"""Which installation this is, in a Stripe account several may share (apps/payments/gateway/installation.py):
every object the mirror writes carries our namespace beside its `app_ref`, and an object of another namespace is
never taken for one of ours.

Here the markers and the tests on them, on metadata as Stripe's JSON and the SDK give it. The namespace generated
once into the database is covered in tests/payments/webhooks/test_retries.py
(`test_the_namespace_is_generated_once_and_kept`); objects of another installation meeting every handler in
tests/payments/webhooks/test_handlers.py and tests/journeys/test_money_rules.py.
"""

import pytest

from apps.payments.gateway.installation import (
    foreign_ref,
    is_ours,
    of_another_installation,
    ref_search_query,
    stripe_refs,
)
from tests.payments.stripe_stand_in import sdk_object


@pytest.fixture(autouse=True)
def namespace(settings):
    settings.STRIPE_APP_NAMESPACE = "laptop-a"


OURS = {"app_ref": "catalog.product:7", "app_namespace": "laptop-a"}
THEIRS = {"app_ref": "catalog.product:7", "app_namespace": "laptop-b"}
UNMARKED = {"app_ref": "catalog.product:7"}  # written before namespaces, by someone
NONE_OF_OURS = {"colour": "blue"}


def test_what_we_write_carries_our_ref_and_namespace():
    assert stripe_refs("catalog.product:7") == OURS
    assert is_ours(stripe_refs("catalog.product:7"))


@pytest.mark.parametrize(
    ("metadata", "ours", "another_installation", "foreign"),
    [
        (OURS, True, False, False),
        (THEIRS, False, True, True),
        (UNMARKED, False, False, True),
        (NONE_OF_OURS, False, False, False),
        ({}, False, False, False),
        (None, False, False, False),
    ],
    ids=["ours", "theirs", "ref-without-namespace", "no-ref", "empty", "none"],
)
def test_an_object_is_ours_another_installations_or_nobodys(metadata, ours, another_installation, foreign):
    assert is_ours(metadata) is ours
    assert of_another_installation(metadata) is another_installation
    assert foreign_ref(metadata) is foreign


def test_metadata_as_the_sdk_hands_it_back_is_read_alike():
    assert is_ours(sdk_object({"metadata": OURS}).metadata)
    assert of_another_installation(sdk_object({"metadata": THEIRS}).metadata)


def test_the_search_for_an_objects_mirror_names_our_namespace_too():
    assert ref_search_query("users.user:3") == (
        "metadata['app_ref']:'users.user:3' AND metadata['app_namespace']:'laptop-a'"
    )
