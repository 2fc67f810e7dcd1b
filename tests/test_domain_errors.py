"""A service's refusal has one answer per kind, whichever view it comes through."""

import pytest

from apps.payments.gateway.errors import StripeKeySpent, StripeUnavailable
from apps.payments.orders.errors import CheckoutUnavailable, OrderActionRefused
from config.api_conventions import domain_error_answer
from config.errors import DomainError

SECRET_WORDS = "timeout talking to 10.0.0.7 with key sk_live_abc"


@pytest.mark.parametrize(
    ("error", "status", "detail"),
    [
        (OrderActionRefused("This order is refunded; it can no longer be canceled."), 409, None),
        (StripeKeySpent(SECRET_WORDS), 409, StripeKeySpent.public_detail),
        (StripeUnavailable(SECRET_WORDS), 503, StripeUnavailable.public_detail),
        (CheckoutUnavailable(SECRET_WORDS), 503, CheckoutUnavailable.public_detail),
        (DomainError("Not here, not now."), 400, None),
    ],
    ids=["conflict", "key-spent", "stripe-down", "checkout-down", "no-particular-kind"],
)
def test_each_kind_of_refusal_is_answered_once_and_keeps_internal_words_out(error, status, detail):
    answer = domain_error_answer(error)

    assert answer.status_code == status
    assert answer.data["detail"] == (detail or str(error))
    if detail:  # the error's own words (hosts, keys, Stripe's message) stay in the log
        assert SECRET_WORDS not in str(answer.data)
        assert "request_id" in answer.data
