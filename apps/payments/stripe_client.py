"""The one way this app talks to Stripe.

Every request, ours and dj-stripe's, goes through `BudgetedHTTPClient`: it waits for
the shared rate budget and feeds the circuit breaker. `StripeGateway.call` adds
what the SDK does not do: retries of what Stripe marks retryable (429 including
`lock_timeout`, 409, 5xx, connection errors) with exponential backoff and jitter,
honouring `Stripe-Should-Retry`, always with the caller's own idempotency key (the
SDK would make a fresh one per call, which a Celery retry must not).
"""

import logging
import random
import time
from collections.abc import Callable
from functools import cache
from typing import TypeVar
from urllib.parse import urlsplit

import stripe
from django.conf import settings

from apps.payments.circuit_breaker import CircuitOpen, circuit_breaker
from apps.payments.rate_budget import endpoint_of, rate_budget

log = logging.getLogger("apps.payments.stripe")
T = TypeVar("T")

# How long one request may wait for the shared budget before the task is retried instead.
BUDGET_MAX_WAIT_SECONDS = 10.0
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 4.0


class StripeUnavailable(Exception):
    """Stripe cannot take the request now (rate limits, outage, open circuit); retry after `retry_after` s."""

    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class StripeRefused(Exception):
    """Stripe refused the request for good (an invalid request, a state that does not allow it): retrying
    the same call cannot help. The message is Stripe's, for the person who asked."""

    def __init__(self, error: stripe.StripeError):
        request_id = getattr(error, "request_id", None)
        super().__init__(f"{error.user_message or getattr(error, 'message', None) or error} (request {request_id})")
        self.code = getattr(error, "code", None)


class StripeKeySpent(Exception):
    """Stripe remembers a failure (or other parameters) for this idempotency key: only a new key can go on."""


class BudgetedHTTPClient(stripe.RequestsClient):
    def request(self, method, url, headers, post_data=None):
        breaker = circuit_breaker()
        breaker.check()
        endpoint = endpoint_of(method, urlsplit(url).path)
        if not rate_budget().acquire(endpoint, max_wait=BUDGET_MAX_WAIT_SECONDS):
            raise StripeUnavailable(f"the Stripe request budget for {endpoint} is spent", retry_after=1.0)
        try:
            content, status, response_headers = super().request(method, url, headers, post_data)
        except stripe.APIConnectionError:
            breaker.record_failure()
            raise
        if status == 429 or status >= 500:
            breaker.record_failure()
        else:
            breaker.record_success()
        return content, status, response_headers


RETRY, NEW_KEY, PERMANENT = "retry", "new_key", "permanent"


def classify(error: stripe.StripeError) -> str:
    """What a failed call means for the caller: try again, try with a new key, or give up."""
    if isinstance(error, stripe.APIConnectionError):
        return RETRY
    status = error.http_status or 0
    should_retry = (error.headers or {}).get("Stripe-Should-Retry")
    if isinstance(error, stripe.IdempotencyError) and status == 400:
        return NEW_KEY
    if should_retry == "false":
        # A 5xx that Stripe saved for this key would only be replayed.
        return NEW_KEY if status >= 500 else PERMANENT
    if should_retry == "true" or status in (409, 429) or status >= 500:
        return RETRY
    return PERMANENT


def _backoff(attempt: int) -> float:
    return min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311


class StripeGateway:
    def __init__(self, api_key: str, api_base: str, timeout: float, max_retries: int):
        self.max_retries = max_retries
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            stripe_version=settings.STRIPE_API_VERSION,
            http_client=BudgetedHTTPClient(timeout=timeout),
            max_network_retries=0,
        )
        self.v1 = self.client.v1

    def call(self, operation: Callable[[dict], T], *, idempotency_key: str | None = None) -> T:
        """Run `operation(request_options)`, retrying what Stripe says may be retried."""
        options = {"idempotency_key": idempotency_key} if idempotency_key else {}
        for attempt in range(self.max_retries + 1):
            try:
                return operation(options)
            except CircuitOpen as error:
                raise StripeUnavailable(str(error), retry_after=error.retry_after) from error
            except stripe.StripeError as error:
                decision = classify(error)
                request_id = getattr(error, "request_id", None)
                if decision == PERMANENT:
                    raise
                if decision == NEW_KEY:
                    raise StripeKeySpent(f"{error.user_message or error} (request {request_id})") from error
                if attempt == self.max_retries:
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


@cache
def _gateway(api_key: str, api_base: str, timeout: float, max_retries: int) -> StripeGateway:
    return StripeGateway(api_key, api_base, timeout, max_retries)


def gateway() -> StripeGateway:
    """The gateway for the current settings (one per process and configuration)."""
    if not settings.STRIPE_SECRET_KEY:
        raise StripeUnavailable("Stripe is not configured: set STRIPE_SECRET_KEY", retry_after=60)
    return _gateway(
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE,
        settings.STRIPE_TIMEOUT_SECONDS,
        settings.STRIPE_MAX_RETRIES,
    )


def install_for_module_level_calls() -> None:
    """dj-stripe calls the SDK's module-level API: route those through the same budget and breaker."""
    stripe.default_http_client = BudgetedHTTPClient(timeout=settings.STRIPE_TIMEOUT_SECONDS)
