"""A request budget for Stripe shared by every worker: token buckets for the account and per endpoint.

With Redis both buckets are taken in one Lua script, on Redis's clock, so N workers
on any number of machines never exceed the budget together. Without Redis (`make
run`) the buckets live in the process.
"""

import re
import threading
import time
from functools import cache

import redis
from django.conf import settings

# A short burst only: a full second of tokens on top of the refill could pass Stripe's one-second window.
BURST_SECONDS = 0.2
# How far back "requests per second" looks: long enough to smooth bursts, short enough to show a surge.
USAGE_WINDOW_SECONDS = 10
# Stripe ids (`prod_Ab12...`) carry digits or capitals; resource names (`payment_intents`) never do.
_ID_SEGMENT = re.compile(r"^[a-z]+(?:_[a-z]+)*_(?=[A-Za-z0-9]*[A-Z0-9])[A-Za-z0-9]+$")

_TAKE_BOTH = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local wait = 0
local state = {}
for i = 1, 2 do
  local rate = tonumber(ARGV[i * 2 - 1])
  local capacity = tonumber(ARGV[i * 2])
  local stored = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens = tonumber(stored[1]) or capacity
  local at = tonumber(stored[2]) or now
  tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
  state[i] = tokens
  if tokens < 1 then wait = math.max(wait, (1 - tokens) / rate) end
end
for i = 1, 2 do
  local tokens = state[i]
  if wait == 0 then tokens = tokens - 1 end
  redis.call('HSET', KEYS[i], 'tokens', tokens, 'at', now)
  redis.call('EXPIRE', KEYS[i], 60)
end
if wait == 0 then
  redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], 120)
end
return tostring(wait)
"""


def _used_key(second: int) -> str:
    return f"stripe:budget:used:{second}"


def endpoint_of(method: str, path: str) -> str:
    """`POST /v1/products/{id}` for `POST /v1/products/prod_123`: ids do not make new endpoints."""
    segments = ["{id}" if _ID_SEGMENT.match(segment) else segment for segment in path.split("?")[0].split("/")]
    return f"{method.upper()} {'/'.join(segments)}"


class _LocalBucket:
    def __init__(self, rate: float):
        self.rate = rate
        self.capacity = max(1.0, rate * BURST_SECONDS)
        self.tokens = self.capacity
        self.at = time.monotonic()

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now


class RateBudget:
    def __init__(self, per_second: float, per_endpoint: float, redis_url: str = ""):
        self.per_second = per_second
        self.per_endpoint = per_endpoint
        self._redis = redis.Redis.from_url(redis_url) if redis_url else None
        self._script = self._redis.register_script(_TAKE_BOTH) if self._redis else None
        self._lock = threading.Lock()
        self._account = _LocalBucket(per_second)
        self._endpoints: dict[str, _LocalBucket] = {}
        self._used: dict[int, int] = {}  # requests let through per wall-clock second, without Redis

    def take(self, endpoint: str) -> float:
        """Take a token from the account and the endpoint bucket; the seconds to wait if none is left."""
        if self._script is not None:
            rates = [
                self.per_second,
                max(1.0, self.per_second * BURST_SECONDS),
                self.per_endpoint,
                max(1.0, self.per_endpoint * BURST_SECONDS),
            ]
            keys = ["stripe:budget:account", f"stripe:budget:endpoint:{endpoint}", _used_key(int(time.time()))]
            return float(self._script(keys=keys, args=rates))
        with self._lock:
            now = time.monotonic()
            buckets = [self._account, self._endpoints.setdefault(endpoint, _LocalBucket(self.per_endpoint))]
            for bucket in buckets:
                bucket.refill(now)
            wait = max((1 - bucket.tokens) / bucket.rate for bucket in buckets)
            if wait <= 0:
                for bucket in buckets:
                    bucket.tokens -= 1
                second = int(time.time())
                self._used[second] = self._used.get(second, 0) + 1
                for old in [at for at in self._used if at < second - USAGE_WINDOW_SECONDS]:
                    del self._used[old]
                return 0.0
            return wait

    def requests_per_second(self) -> float:
        """Requests let through per second over the last full seconds: by every worker with Redis, else this
        process's."""
        now = int(time.time())
        seconds = range(now - USAGE_WINDOW_SECONDS, now)
        if self._redis is not None:
            counts = self._redis.mget([_used_key(second) for second in seconds])
        else:
            with self._lock:
                counts = [self._used.get(second) for second in seconds]
        return sum(int(count or 0) for count in counts) / USAGE_WINDOW_SECONDS

    def in_use(self) -> float:
        """The share of the account budget spent lately (0.0 to 1.0)."""
        return min(1.0, self.requests_per_second() / self.per_second) if self.per_second > 0 else 0.0

    def acquire(self, endpoint: str, max_wait: float) -> bool:
        """Block until the request may go; False if that would take longer than `max_wait` seconds."""
        deadline = time.monotonic() + max_wait
        while True:
            wait = self.take(endpoint)
            if wait <= 0:
                return True
            if time.monotonic() + wait > deadline:
                return False
            time.sleep(wait)


@cache
def _budget(per_second: float, per_endpoint: float, redis_url: str) -> RateBudget:
    return RateBudget(per_second, per_endpoint, redis_url)


def rate_budget() -> RateBudget:
    """The budget for the current settings (one per process and configuration)."""
    return _budget(
        settings.STRIPE_RATE_LIMIT_PER_SECOND, settings.STRIPE_RATE_LIMIT_PER_ENDPOINT, settings.COORDINATION_REDIS_URL
    )
