"""Stop hammering Stripe after repeated failures; let work resume by itself after a cool-down.

Failures (429s, 5xx, connection errors) are counted in a sliding window shared by all
workers through Redis; past the threshold the circuit opens for the cool-down, during
which calls fail fast without reaching Stripe. Once it closes, the next calls are the
probe: a success resets the count.
"""

import threading
import time
from functools import cache

import redis
from django.conf import settings

WINDOW_SECONDS = 30
# A circuit opened by another worker is seen within this long; checking Redis on every request costs more.
CHECK_EVERY_SECONDS = 0.5


class CircuitOpen(Exception):
    """Stripe failed too often lately; try again after `retry_after` seconds."""

    def __init__(self, retry_after: float):
        super().__init__(f"Stripe circuit is open for {retry_after:.1f}s more after repeated failures")
        self.retry_after = retry_after


class CircuitBreaker:
    def __init__(self, threshold: int, cooldown: float, redis_url: str = ""):
        self.threshold = threshold
        self.cooldown = cooldown
        # Short timeouts: it is asked before every Stripe call, a web request's too.
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2) if redis_url else None
        self._lock = threading.Lock()
        self._failures: list[float] = []
        self._open_until = 0.0  # as last seen, on this process's monotonic clock
        self._checked_at = float("-inf")
        self._failed_since_success = False

    def check(self) -> None:
        """Raise `CircuitOpen` while the circuit is open."""
        now = time.monotonic()
        if self._redis is not None and now - self._checked_at >= CHECK_EVERY_SECONDS:
            remaining_ms = self._redis.pttl("stripe:circuit:open")
            with self._lock:
                self._checked_at = now
                self._open_until = now + remaining_ms / 1000 if remaining_ms and remaining_ms > 0 else 0.0
        with self._lock:
            remaining = self._open_until - now
        if remaining > 0:
            raise CircuitOpen(remaining)

    def open_for(self) -> float:
        """Seconds the circuit stays open (0.0 when closed), read afresh: for health checks and metrics."""
        if self._redis is not None:
            remaining_ms = self._redis.pttl("stripe:circuit:open")
            return remaining_ms / 1000 if remaining_ms and remaining_ms > 0 else 0.0
        with self._lock:
            return max(0.0, self._open_until - time.monotonic())

    def record_success(self) -> None:
        if not self._failed_since_success:
            return  # nothing of ours to reset; another worker's failures age out of the window
        self._failed_since_success = False
        if self._redis is not None:
            self._redis.delete("stripe:circuit:failures")
            return
        with self._lock:
            self._failures.clear()

    def record_failure(self) -> None:
        self._failed_since_success = True
        if self._redis is not None:
            pipe = self._redis.pipeline()
            pipe.incr("stripe:circuit:failures")
            pipe.expire("stripe:circuit:failures", WINDOW_SECONDS)
            failures, _ = pipe.execute()
            if failures >= self.threshold:
                self._redis.set("stripe:circuit:open", "1", px=int(self.cooldown * 1000), nx=True)
                self._redis.delete("stripe:circuit:failures")
                self._checked_at = float("-inf")  # see it at once here
            return
        with self._lock:
            now = time.monotonic()
            self._failures = [at for at in self._failures if now - at < WINDOW_SECONDS] + [now]
            if len(self._failures) >= self.threshold:
                self._open_until = now + self.cooldown
                self._failures.clear()


@cache
def _breaker(threshold: int, cooldown: float, redis_url: str) -> CircuitBreaker:
    return CircuitBreaker(threshold, cooldown, redis_url)


def circuit_breaker() -> CircuitBreaker:
    return _breaker(
        settings.STRIPE_CIRCUIT_FAILURES, settings.STRIPE_CIRCUIT_COOLDOWN_SECONDS, settings.COORDINATION_REDIS_URL
    )
