"""The client every Stripe call goes through.

Every request, ours and dj-stripe's, goes through `BudgetedHTTPClient`: it takes its
turn in the shared rate budget and feeds the circuit breaker. `StripeGateway.call` adds
what the SDK does not do: retries of what Stripe marks retryable (429 including
`lock_timeout`, 409, 5xx, connection errors) with exponential backoff and jitter,
honouring `Stripe-Should-Retry`, always with the caller's own idempotency key (the
SDK would make a fresh one per call, which a Celery retry must not). How long a call
may wait and how often it is tried is `policies.current_policy()`: a worker waits and
retries, a web request never waits.
"""

import logging
import random
import time
from collections.abc import Callable
from functools import cache
from typing import TypeVar
from urllib.parse import urlsplit

import redis
import stripe
from django.conf import settings

from apps.payments.gateway import reads
from apps.payments.gateway.circuit_breaker import CircuitOpen, circuit_breaker
from apps.payments.gateway.errors import (
    ErrorClass,
    StripeKeySpent,
    StripeRefused,
    StripeUnavailable,
    classify,
    is_missing,
)
from apps.payments.gateway.policies import RETRY_AFTER_SECONDS, current_policy, spend_call
from apps.payments.gateway.rate_budget import endpoint_of, rate_budget
from config import logs, metrics

log = logging.getLogger("apps.payments.stripe")
T = TypeVar("T")

# A take from the budget costs a Redis round trip; a wait longer than that is the budget holding a request back.
BUDGET_WAIT_NOTICED_SECONDS = 0.005
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 4.0


class BudgetedHTTPClient(stripe.RequestsClient):
    def request(self, method, url, headers, post_data=None):
        if (answered := reads.answer(self, method, url, headers)) is not None:
            return answered  # read before the event's transaction (`reads`)
        breaker = circuit_breaker()
        endpoint = endpoint_of(method, urlsplit(url).path)
        waited_from = time.perf_counter()
        try:
            breaker.check()
            spend_call()
            allowed = rate_budget().acquire(endpoint, max_wait=current_policy().budget_wait_seconds)
        except CircuitOpen:
            metrics.STRIPE_CIRCUIT_REFUSED.inc()
            raise
        except redis.RedisError as error:  # the shared budget cannot be read: no call goes past it unmetered
            raise StripeUnavailable(
                f"the Stripe request budget cannot be read: {error}", RETRY_AFTER_SECONDS
            ) from error
        if not allowed:
            metrics.STRIPE_BUDGET_SPENT.inc()
            raise StripeUnavailable(f"the Stripe request budget for {endpoint} is spent", RETRY_AFTER_SECONDS)
        waited = time.perf_counter() - waited_from
        if waited > BUDGET_WAIT_NOTICED_SECONDS:
            metrics.STRIPE_BUDGET_WAITS.inc()
            metrics.STRIPE_BUDGET_WAIT.inc(waited)
        try:
            content, status, response_headers = super().request(method, url, headers, post_data)
        except stripe.APIConnectionError:
            metrics.STRIPE_REQUESTS.labels(endpoint, "error").inc()
            _record(breaker.record_failure)
            raise
        metrics.STRIPE_REQUESTS.labels(endpoint, str(status)).inc()
        logs.note_stripe_request(response_headers.get("Request-Id"))
        _record(breaker.record_failure if status == 429 or status >= 500 else breaker.record_success)
        return content, status, response_headers


def _record(outcome) -> None:
    """Tell the circuit breaker how a call went; a breaker that cannot be told never loses Stripe's answer."""
    try:
        outcome()
    except redis.RedisError as error:
        log.warning("circuit breaker not told error=%s", error)


def _backoff(attempt: int) -> float:
    return min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311


class StripeGateway:
    def __init__(self, api_key: str, api_base: str, timeout: float):
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            stripe_version=settings.STRIPE_API_VERSION,
            http_client=BudgetedHTTPClient(timeout=timeout),
            max_network_retries=0,
        )
        self.v1 = self.client.v1

    def call(self, operation: Callable[[dict], T], *, idempotency_key: str | None = None) -> T:
        """Run `operation(request_options)`, retrying what Stripe says may be retried (in a worker: a web
        request tries once and leaves the retrying to a worker)."""
        options = {"idempotency_key": idempotency_key} if idempotency_key else {}
        attempts = current_policy().attempts
        for attempt in range(attempts):
            try:
                return operation(options)
            except CircuitOpen as error:
                raise StripeUnavailable(str(error), retry_after=error.retry_after) from error
            except stripe.StripeError as error:
                decision = classify(error)
                request_id = getattr(error, "request_id", None)
                if decision == ErrorClass.PERMANENT:
                    raise
                if decision == ErrorClass.NEW_KEY:
                    raise StripeKeySpent(f"{error.user_message or error} (request {request_id})") from error
                if attempt == attempts - 1:
                    answer = error.http_status or "nothing"
                    raise StripeUnavailable(
                        f"Stripe answered {answer} {attempt + 1} times: {error.user_message or error}",
                        retry_after=_backoff(attempt + 1),
                    ) from error
                log.info(
                    "stripe retry status=%s attempt=%s request_id=%s key=%s",
                    error.http_status,
                    attempt + 1,
                    request_id,
                    idempotency_key,
                )
                time.sleep(_backoff(attempt))
        raise AssertionError("unreachable")

    def call_for_client(self, operation: Callable[[dict], T], *, idempotency_key: str | None = None) -> T:
        """A call a person waits on: Stripe's refusal becomes `StripeRefused`, an answer for them, not a crash."""
        try:
            return self.call(operation, idempotency_key=idempotency_key)
        except stripe.StripeError as error:
            log.warning("stripe refused error=%s", error)
            raise StripeRefused(error) from error

    def find_for_client(self, operation: Callable[[dict], T]) -> T | None:
        """A retrieve a person waits on: None when Stripe holds no such object, otherwise as `call_for_client`."""
        try:
            return self.call(operation)
        except stripe.StripeError as error:
            if is_missing(error):
                return None
            log.warning("stripe refused error=%s", error)
            raise StripeRefused(error) from error


@cache
def _gateway(api_key: str, api_base: str, timeout: float) -> StripeGateway:
    return StripeGateway(api_key, api_base, timeout)


def gateway() -> StripeGateway:
    """The gateway for the current settings (one per process and configuration)."""
    if not settings.STRIPE_SECRET_KEY:
        raise StripeUnavailable("Stripe is not configured: set STRIPE_SECRET_KEY", retry_after=60)
    return _gateway(
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE,
        settings.STRIPE_TIMEOUT_SECONDS,
    )


def install_for_module_level_calls() -> None:
    """dj-stripe calls the SDK's module-level API: route those through the same budget and breaker."""
    stripe.default_http_client = BudgetedHTTPClient(timeout=settings.STRIPE_TIMEOUT_SECONDS)
