"""Stripe's customer portal (apps/payments/billing/portal.py): a portal session for a signed-in user, and the
portal's login page, which a mail about a failed payment links to.

Here with Stripe played by an in-memory stand-in. The portal reached over HTTP (and a return only to the shop)
is covered in tests/journeys/test_subscriptions.py
(`test_another_users_subscription_is_not_found_and_the_portal_returns_only_to_the_shop`), the login page in a
dunning mail in `test_a_plan_lives_through_renewal_dunning_a_new_card_and_cancellation`.
"""

import logging

import pytest

from apps.payments.billing.portal import billing_portal_login_url, billing_portal_url
from apps.payments.gateway.errors import StripeRefused
from tests.payments.billing.factories import subscriber
from tests.payments.stripe_stand_in import refused
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "https://billing.stripe.com/p/login/test_shop"


def _configuration(enabled: bool, url: str | None) -> dict:
    return {
        "id": "bpc_1",
        "object": "billing_portal.configuration",
        "is_default": True,
        "login_page": {"enabled": enabled, "url": url},
    }


class TestPortalSession:
    def test_a_user_gets_a_portal_session_of_their_own_customer_returning_to_the_shop(self, stripe_stand_in):
        ada = UserFactory()
        subscriber(ada)
        stripe_stand_in.answer(
            "billing_portal.sessions.create",
            {"id": "bps_1", "object": "billing_portal.session", "url": "https://billing.stripe.com/p/session/test_1"},
        )

        url = billing_portal_url(user=ada, return_url="https://shop.example/account")

        assert url == "https://billing.stripe.com/p/session/test_1"
        assert stripe_stand_in.calls[0].params == {
            "customer": f"cus_{ada.pk}",
            "return_url": "https://shop.example/account",
        }

    def test_a_portal_stripe_will_not_open_is_its_refusal_for_the_user(self, stripe_stand_in):
        ada = UserFactory()
        subscriber(ada)
        stripe_stand_in.answer("billing_portal.sessions.create", refused("No configuration provided."))

        with pytest.raises(StripeRefused, match="No configuration provided"):
            billing_portal_url(user=ada, return_url="https://shop.example/account")


class TestLoginPage:
    def test_the_default_portals_login_page_is_linked(self, stripe_stand_in):
        stripe_stand_in.answer("billing_portal.configurations.list", [_configuration(True, LOGIN)])

        assert billing_portal_login_url() == LOGIN
        assert stripe_stand_in.calls[0].params == {"is_default": True}

    @pytest.mark.parametrize("configurations", [[], [_configuration(False, None)]], ids=["none", "turned-off"])
    def test_without_a_login_page_turned_on_no_link_is_given(self, stripe_stand_in, configurations):
        stripe_stand_in.answer("billing_portal.configurations.list", configurations)

        assert billing_portal_login_url() == ""

    def test_a_key_that_may_not_read_the_portal_gives_no_link_and_says_why(self, stripe_stand_in, caplog):
        stripe_stand_in.answer("billing_portal.configurations.list", refused("This key may not read the portal."))

        with caplog.at_level(logging.WARNING, logger="apps.payments.billing"):
            assert billing_portal_login_url() == ""

        assert "portal login page unknown" in caplog.text
