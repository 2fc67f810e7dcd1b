"""Stop calling Stripe after repeated failures (apps/payments/gateway/circuit_breaker.py): failures counted in a
window every worker shares through Redis (or in the process without it); past the threshold the circuit opens
for the cool-down, seen by every worker within half a second, and closes by itself; a success resets the count.

The first tests here wait in real time; the ones after them read a clock of the test's own. What the client does
with an open circuit (no request reaches Stripe) is in tests/payments/gateway/test_client.py, the health page's
view of it in tests/test_health.py.
"""

import time

import pytest
import redis

from apps.payments.gateway import circuit_breaker as breakers
from apps.payments.gateway.circuit_breaker import CircuitBreaker, CircuitOpen, circuit_breaker


def test_circuit_opens_after_repeated_failures_and_closes_by_itself(budget_redis):
    breaker = CircuitBreaker(threshold=3, cooldown=0.5, redis_url=budget_redis)
    other_worker = CircuitBreaker(threshold=3, cooldown=0.5, redis_url=budget_redis)

    for _ in range(3):
        breaker.record_failure()

    with pytest.raises(CircuitOpen) as error:
        other_worker.check()
    assert 0 < error.value.retry_after <= 0.5
    time.sleep(0.6)
    other_worker.check()


def test_a_success_resets_the_count(budget_redis):
    breaker = CircuitBreaker(threshold=3, cooldown=5, redis_url=budget_redis)

    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()

    breaker.check()


UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


class Clock:
    """The module's `time`, moved by hand."""

    def __init__(self):
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(breakers, "time", clock)
    return clock


def _open_for(breaker: CircuitBreaker) -> float | None:
    """How long `check` says the circuit stays open; None when it lets the call through."""
    try:
        breaker.check()
    except CircuitOpen as open_circuit:
        return open_circuit.retry_after
    return None


class TestInOneProcess:
    def test_the_circuit_opens_at_the_threshold_for_the_cooldown_and_closes_by_itself(self, clock):
        breaker = CircuitBreaker(threshold=3, cooldown=10)
        breaker.record_failure()
        breaker.record_failure()
        before = _open_for(breaker)

        breaker.record_failure()
        opened = _open_for(breaker)
        clock.now += 9.5
        nearly = _open_for(breaker)
        clock.now += 0.5

        assert (before, opened, nearly, _open_for(breaker)) == (None, 10.0, 0.5, None)

    def test_failures_older_than_the_window_no_longer_count(self, clock):
        breaker = CircuitBreaker(threshold=3, cooldown=10)
        breaker.record_failure()
        breaker.record_failure()

        clock.now += breakers.WINDOW_SECONDS
        breaker.record_failure()

        assert _open_for(breaker) is None

    def test_after_the_cooldown_it_takes_the_whole_threshold_again_to_open(self, clock):
        breaker = CircuitBreaker(threshold=2, cooldown=10)
        breaker.record_failure()
        breaker.record_failure()
        clock.now += 10

        breaker.record_failure()

        assert _open_for(breaker) is None

    def test_how_long_it_stays_open_is_told_to_the_health_page(self, clock):
        breaker = CircuitBreaker(threshold=1, cooldown=10)
        closed = breaker.open_for()

        breaker.record_failure()
        clock.now += 4

        assert (closed, breaker.open_for()) == (0.0, 6.0)


class TestSharedThroughRedis:
    def test_a_circuit_another_worker_opened_is_seen_within_half_a_second(self, clock, budget_redis):
        opener = CircuitBreaker(threshold=2, cooldown=30, redis_url=budget_redis)
        other = CircuitBreaker(threshold=2, cooldown=30, redis_url=budget_redis)
        assert _open_for(other) is None  # it has just looked

        opener.record_failure()
        opener.record_failure()
        clock.now += breakers.CHECK_EVERY_SECONDS / 5
        not_yet = _open_for(other)
        clock.now += breakers.CHECK_EVERY_SECONDS

        assert not_yet is None
        assert 29 < _open_for(other) <= 30

    def test_the_worker_that_opened_it_stops_at_once(self, clock, budget_redis):
        opener = CircuitBreaker(threshold=2, cooldown=30, redis_url=budget_redis)
        assert _open_for(opener) is None  # it has just looked

        opener.record_failure()
        opener.record_failure()

        assert _open_for(opener) is not None

    def test_failures_while_it_is_open_do_not_keep_it_open_longer(self, budget_redis):
        breaker = CircuitBreaker(threshold=2, cooldown=30, redis_url=budget_redis)
        shared = redis.Redis.from_url(budget_redis)
        shared.set("stripe:circuit:open", "1", px=3000)  # opened 27 s ago

        for _ in range(4):
            breaker.record_failure()

        assert 0 < shared.pttl("stripe:circuit:open") <= 3000
        assert 0 < breaker.open_for() <= 3.0

    def test_another_workers_success_does_not_wipe_out_this_ones_failures(self, budget_redis):
        failing = CircuitBreaker(threshold=3, cooldown=30, redis_url=budget_redis)
        succeeding = CircuitBreaker(threshold=3, cooldown=30, redis_url=budget_redis)

        failing.record_failure()
        failing.record_failure()
        succeeding.record_success()  # it never failed: its success says nothing of the others' calls
        failing.record_failure()

        assert failing.open_for() > 0

    def test_failures_are_forgotten_after_the_window(self, budget_redis):
        breaker = CircuitBreaker(threshold=3, cooldown=30, redis_url=budget_redis)

        breaker.record_failure()

        ttl = redis.Redis.from_url(budget_redis).ttl("stripe:circuit:failures")
        assert 0 < ttl <= breakers.WINDOW_SECONDS

    def test_a_breaker_whose_redis_cannot_be_reached_does_not_let_calls_through_unchecked(self):
        breaker = CircuitBreaker(threshold=3, cooldown=30, redis_url=UNREACHABLE)

        with pytest.raises(redis.RedisError):
            breaker.check()


def test_the_breaker_follows_the_settings(settings):
    settings.STRIPE_CIRCUIT_FAILURES, settings.STRIPE_CIRCUIT_COOLDOWN_SECONDS = 5, 30.0
    current = circuit_breaker()

    settings.STRIPE_CIRCUIT_FAILURES = 8

    assert circuit_breaker() is not current
    assert (circuit_breaker().threshold, circuit_breaker().cooldown) == (8, 30.0)
    assert circuit_breaker() is circuit_breaker()  # one per process and configuration
