"""A client's `Idempotency-Key` on requests that move money (apps/payments/orders/idempotency.py): the first
request with a key runs and its answer is kept; the same key again gets that answer; another request with the
key, or a second while the first runs, is a conflict; an answer that says nothing happened is not kept.

Here the rules on their own, with `run` counting how often the request really ran, and the clock moved on the
stored rows. The same keys over HTTP (a checkout, a payment link, a refund sent again, two at once) are covered
in tests/journeys/test_money_rules.py (`TestIdempotencyKeys`) and tests/journeys/test_payment_intents.py.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.payments.orders.idempotency import (
    ABANDONED_AFTER,
    Answer,
    IdempotencyConflict,
    idempotent,
    request_fingerprint,
)
from apps.payments.orders.models import IdempotentRequest
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

CART = {"lines": [[7, 2]], "success_url": "https://shop.example/thanks"}


class Requests:
    """A request handler that counts its runs and answers what it is told to."""

    def __init__(self, *answers: Answer):
        self.answers = list(answers) or [Answer(201, {"order": 1})]
        self.runs = 0

    def __call__(self) -> Answer:
        answer = self.answers[min(self.runs, len(self.answers) - 1)]
        self.runs += 1
        return answer


def _send(user, handler, *, key: str | None = "key-1", scope: str = "checkout", request: dict = CART) -> Answer:
    return idempotent(user=user, scope=scope, key=key, request=request, run=handler)


def _age(key: str, by: timedelta) -> None:
    IdempotentRequest.objects.filter(key=key).update(created_at=timezone.now() - by)


def test_without_a_key_every_request_runs():
    user, handler = UserFactory(), Requests()

    _send(user, handler, key=None)
    _send(user, handler, key="")

    assert handler.runs == 2
    assert not IdempotentRequest.objects.exists()


def test_the_same_key_again_gets_the_first_answer_without_running_again():
    user, handler = UserFactory(), Requests(Answer(201, {"order": 1}), Answer(201, {"order": 2}))

    first = _send(user, handler)
    again = _send(user, handler, request={**CART})

    assert handler.runs == 1
    assert (first.status, first.body, first.replayed) == (201, {"order": 1}, False)
    assert (again.status, again.body, again.replayed) == (201, {"order": 1}, True)


def test_a_refusal_is_kept_and_replayed_like_any_answer_below_500():
    user, handler = UserFactory(), Requests(Answer(400, {"lines": ["empty"]}))

    _send(user, handler)
    again = _send(user, handler)

    assert (handler.runs, again.status, again.body) == (1, 400, {"lines": ["empty"]})


def test_the_same_key_with_another_request_is_a_conflict():
    user, handler = UserFactory(), Requests()
    _send(user, handler)

    with pytest.raises(IdempotencyConflict, match="already used for another request"):
        _send(user, handler, request={**CART, "lines": [[7, 3]]})

    assert handler.runs == 1


@pytest.mark.parametrize("other", ["user", "scope"])
def test_a_key_belongs_to_one_user_and_one_purpose(other):
    user, handler = UserFactory(), Requests(Answer(201, {"order": 1}), Answer(201, {"order": 2}))
    _send(user, handler)

    answer = _send(UserFactory(), handler) if other == "user" else _send(user, handler, scope="payment-link")

    assert (handler.runs, answer.body, answer.replayed) == (2, {"order": 2}, False)


def test_a_second_request_while_the_first_still_runs_is_a_conflict():
    user = UserFactory()
    inner_refusals = []

    def first_run() -> Answer:
        try:
            _send(user, Requests())
        except IdempotencyConflict as error:
            inner_refusals.append(str(error))
        return Answer(201, {"order": 1})

    _send(user, first_run)

    assert inner_refusals == ["A request with this Idempotency-Key is still being processed; retry shortly."]


@pytest.mark.parametrize("failure", ["5xx", "exception"])
def test_an_answer_that_says_nothing_happened_is_not_kept_and_the_retry_runs(failure):
    user = UserFactory()

    def unavailable() -> Answer:
        if failure == "exception":
            raise ConnectionError("Stripe unreachable")
        return Answer(503, {"detail": "try again"})

    if failure == "exception":
        with pytest.raises(ConnectionError):
            _send(user, unavailable)
    else:
        assert _send(user, unavailable).status == 503
    retried = _send(user, Requests(Answer(201, {"order": 1})))

    assert (retried.status, retried.replayed) == (201, False)


def test_a_first_request_that_died_while_running_frees_its_key_after_five_minutes():
    user = UserFactory()
    IdempotentRequest.objects.create(user=user, scope="checkout", key="key-1", fingerprint=request_fingerprint(CART))

    with pytest.raises(IdempotencyConflict):
        _send(user, Requests())
    _age("key-1", ABANDONED_AFTER + timedelta(seconds=1))
    answer = _send(user, Requests())

    assert (answer.status, answer.replayed) == (201, False)


def test_a_key_is_remembered_for_idempotency_key_hours_then_runs_again(settings):
    settings.IDEMPOTENCY_KEY_HOURS = 24
    user, handler = UserFactory(), Requests(Answer(201, {"order": 1}), Answer(201, {"order": 2}))
    _send(user, handler)

    _age("key-1", timedelta(hours=23))
    kept = _send(user, handler)
    _age("key-1", timedelta(hours=24, seconds=1))
    forgotten = _send(user, handler, request={**CART, "lines": [[7, 3]]})  # even for another request

    assert (kept.body, kept.replayed) == ({"order": 1}, True)
    assert (forgotten.body, forgotten.replayed) == ({"order": 2}, False)


@pytest.mark.parametrize("key", ["k" * 256, "tab\there", "new\nline"], ids=["too-long", "tab", "newline"])
def test_a_key_that_is_too_long_or_not_printable_is_refused_before_running(key):
    handler = Requests()

    with pytest.raises(IdempotencyConflict, match="at most 255 printable characters"):
        _send(UserFactory(), handler, key=key)

    assert handler.runs == 0


def test_a_key_of_255_printable_characters_is_taken():
    assert _send(UserFactory(), Requests(), key="k" * 255).status == 201


def test_the_same_request_in_another_key_order_has_the_same_fingerprint_and_another_value_another():
    same = {"success_url": "https://shop.example/thanks", "lines": [[7, 2]]}

    assert request_fingerprint(same) == request_fingerprint(CART)
    assert request_fingerprint({**CART, "lines": [[7, 3]]}) != request_fingerprint(CART)
