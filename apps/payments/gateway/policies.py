"""How long a Stripe call may wait, and how often it is tried, depending on who waits for it.

A worker waits: it takes its turn in the shared rate budget (up to `BUDGET_MAX_WAIT_SECONDS`) and retries what
Stripe marks retryable, with backoff (`STRIPE_MAX_RETRIES`). A web request never waits: each call is tried
once, goes only if the budget has room now, and anything else is `StripeUnavailable`, answered 503 with
`Retry-After`; the worker does the waiting and the retrying. `WebRequestMiddleware` marks every request.

`calls_at_most(n)` bounds the Stripe requests made inside it (a request pushing an object the mirror has not
brought yet may make one): the next one is refused as `StripeUnavailable`.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings

from apps.payments.gateway.errors import StripeUnavailable

# How long a worker's request may wait for the shared budget before its task is retried instead.
BUDGET_MAX_WAIT_SECONDS = 10.0
# What a client is told to wait when a call made on its behalf could not go now.
RETRY_AFTER_SECONDS = 2.0


@dataclass(frozen=True)
class CallPolicy:
    attempts: int  # of one call; retryable failures in between are retried with backoff
    budget_wait_seconds: float  # the longest wait for the shared rate budget


def _in_worker() -> CallPolicy:
    return CallPolicy(attempts=settings.STRIPE_MAX_RETRIES + 1, budget_wait_seconds=BUDGET_MAX_WAIT_SECONDS)


IN_WEB_REQUEST = CallPolicy(attempts=1, budget_wait_seconds=0.0)

_in_web_request: ContextVar[bool] = ContextVar("in_web_request", default=False)
_calls_left: ContextVar[list[int] | None] = ContextVar("stripe_calls_left", default=None)


def current_policy() -> CallPolicy:
    return IN_WEB_REQUEST if _in_web_request.get() else _in_worker()


def in_web_request() -> bool:
    return _in_web_request.get()


@contextmanager
def serving_web_request() -> Iterator[None]:
    token = _in_web_request.set(True)
    try:
        yield
    finally:
        _in_web_request.reset(token)


class WebRequestMiddleware:
    """Every Stripe call made while a request is served follows `IN_WEB_REQUEST`."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with serving_web_request():
            return self.get_response(request)


@contextmanager
def calls_at_most(calls: int) -> Iterator[None]:
    token = _calls_left.set([calls])
    try:
        yield
    finally:
        _calls_left.reset(token)


def spend_call() -> None:
    """Count one Stripe request against `calls_at_most`, or refuse it when none is left."""
    left = _calls_left.get()
    if left is None:
        return
    if left[0] <= 0:
        raise StripeUnavailable("no more Stripe calls may be made here; a worker finishes it", RETRY_AFTER_SECONDS)
    left[0] -= 1
