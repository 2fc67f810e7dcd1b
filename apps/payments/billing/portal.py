"""Stripe's customer portal: a session for a signed-in user, and the login page a mail can link to."""

import logging

import stripe

from apps.payments.gateway.client import gateway
from apps.payments.gateway.errors import StripeUnavailable
from apps.payments.mirror.models import MirrorKind
from apps.payments.mirror.refs import ensure_in_stripe
from apps.payments.orders.errors import CheckoutUnavailable
from apps.users.models import User

log = logging.getLogger("apps.payments.billing")


def billing_portal_login_url() -> str:
    """The link to the portal's login page, where a customer reached by mail saves another card ("" unless
    the login page is turned on in Stripe's portal settings). A portal session cannot be mailed: it is
    short-lived and opens without asking who is there."""
    gw = gateway()
    try:
        found = gw.call(
            lambda options: gw.v1.billing_portal.configurations.list(params={"is_default": True}, options=options)
        )
    except stripe.StripeError as error:  # refused for good (a key without portal rights): mail without it
        log.warning("portal login page unknown error=%s", error)
        return ""
    for configuration in found.data:
        if configuration.login_page.enabled and configuration.login_page.url:
            return configuration.login_page.url
    return ""


def billing_portal_url(*, user: User, return_url: str) -> str:
    """A Stripe Billing Portal session for the user's customer: their plans, invoices and card."""
    try:
        customer = ensure_in_stripe(MirrorKind.USER, user.pk)
    except StripeUnavailable as error:
        raise CheckoutUnavailable(str(error), error.retry_after) from error
    gw = gateway()
    session = gw.call_for_client(
        lambda options: gw.v1.billing_portal.sessions.create(
            params={"customer": customer, "return_url": return_url}, options=options
        )
    )
    return session.url
