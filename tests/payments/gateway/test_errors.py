"""What a failed Stripe call means for its caller (apps/payments/gateway/errors.py): try the same call again
with the same key, try only with a new key, or give up; and the errors that carry that to the client (503 with
`Retry-After`, 409, 502) with Stripe's own words kept for the log.

Here each of Stripe's answers as the SDK raises it, classified directly. The gateway acting on the classes against
the emulator (retries with one key, a saved 500, a permanent 400) is covered in
tests/payments/gateway/test_client.py; how each error is answered over HTTP in tests/test_domain_errors.py.
"""

import pytest
import stripe

from apps.payments.gateway.errors import ErrorClass, StripeRefused, classify, is_missing


def _error(kind=stripe.InvalidRequestError, *, status: int, should_retry: str | None = None, **fields):
    headers = {"Stripe-Should-Retry": should_retry} if should_retry is not None else {}
    if kind is stripe.InvalidRequestError:
        return kind("refused", param=None, http_status=status, headers=headers, **fields)
    if kind is stripe.CardError:
        return kind("refused", None, fields.pop("code"), http_status=status, headers=headers, **fields)
    return kind("refused", http_status=status, headers=headers, **fields)


@pytest.mark.parametrize(
    ("error", "decision"),
    [
        (stripe.APIConnectionError("Could not connect"), ErrorClass.RETRY),
        (_error(stripe.RateLimitError, status=429), ErrorClass.RETRY),
        (_error(stripe.InvalidRequestError, status=429, code="lock_timeout"), ErrorClass.RETRY),
        (_error(stripe.APIError, status=409), ErrorClass.RETRY),
        (_error(stripe.APIError, status=500), ErrorClass.RETRY),
        (_error(stripe.APIError, status=503), ErrorClass.RETRY),
        (_error(stripe.APIError, status=400, should_retry="true"), ErrorClass.RETRY),
        (_error(stripe.APIError, status=500, should_retry="false"), ErrorClass.NEW_KEY),
        (_error(stripe.IdempotencyError, status=400), ErrorClass.NEW_KEY),
        (_error(stripe.InvalidRequestError, status=409, should_retry="false"), ErrorClass.PERMANENT),
        (_error(stripe.InvalidRequestError, status=400), ErrorClass.PERMANENT),
        (_error(stripe.InvalidRequestError, status=404, code="resource_missing"), ErrorClass.PERMANENT),
        (_error(stripe.CardError, status=402, code="card_declined"), ErrorClass.PERMANENT),
        (_error(stripe.AuthenticationError, status=401), ErrorClass.PERMANENT),
        (_error(stripe.PermissionError, status=403), ErrorClass.PERMANENT),
    ],
    ids=[
        "no-answer",
        "rate-limited",
        "lock-timeout",
        "conflict",
        "server-error",
        "unavailable",
        "stripe-says-retry",
        "saved-server-error",
        "key-used-with-other-parameters",
        "stripe-says-do-not-retry",
        "bad-request",
        "missing",
        "card-declined",
        "bad-key",
        "key-without-the-right",
    ],
)
def test_each_answer_means_retry_new_key_or_give_up(error, decision):
    assert classify(error) is decision


def test_only_an_object_stripe_does_not_hold_is_missing():
    assert is_missing(_error(status=404, code="resource_missing"))
    assert not is_missing(_error(status=400, code="parameter_missing"))
    assert not is_missing(_error(stripe.APIError, status=404, code="resource_missing"))


def test_a_refusal_carries_stripes_words_its_request_and_its_code_for_the_log():
    error = stripe.CardError("Your card was declined.", None, "card_declined", http_status=402)
    error.request_id = "req_123"

    refused = StripeRefused(error)

    assert str(refused) == "Your card was declined. (request req_123)"
    assert refused.code == "card_declined"
    assert refused.public_detail == "The payment provider refused the request; nothing was changed."
