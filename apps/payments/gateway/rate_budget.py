"""A request budget for Stripe shared by every worker: token buckets for the account and per endpoint.

The buckets are kept as GCRA (the "virtual scheduling" form of a token bucket): each holds the
time its next request is due. A request asks once and is given its moment, booked at once;
it sleeps until then and goes, instead of asking again and again while the bucket refills
(ten asks per request, and as much of a worker's CPU, when sixteen threads wait on a full
budget). A moment further than the caller will wait books nothing. Every bucket is booked at
the moment the request goes, so N requests never exceed `capacity + rate * window` in any
window, in whatever order their sleeps end.

With Redis both buckets are booked in one Lua script, on Redis's clock, so N workers on any
number of machines never exceed the budget together. Without Redis (`make run`) the buckets
live in the process.
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

# KEYS: account, endpoint, this second's usage counter. ARGV: per bucket its interval (1 / rate) and its
# tolerance ((capacity - 1) / rate), then the longest wait the caller accepts. Answers the wait.
_BOOK_BOTH = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local at = now
local due = {}
for i = 1, 2 do
  due[i] = math.max(now, tonumber(redis.call('GET', KEYS[i])) or now)
  at = math.max(at, due[i] - tonumber(ARGV[i * 2]))
end
local wait = at - now
if wait > tonumber(ARGV[5]) then return tostring(wait) end
for i = 1, 2 do
  redis.call('SET', KEYS[i], tostring(math.max(due[i], at) + tonumber(ARGV[i * 2 - 1])), 'EX', 60)
end
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], 120)
return tostring(wait)
"""


def _used_key(second: int) -> str:
    return f"stripe:budget:used:{second}"


def endpoint_of(method: str, path: str) -> str:
    """`POST /v1/products/{id}` for `POST /v1/products/prod_123`: ids do not make new endpoints."""
    segments = ["{id}" if _ID_SEGMENT.match(segment) else segment for segment in path.split("?")[0].split("/")]
    return f"{method.upper()} {'/'.join(segments)}"


class _Bucket:
    """A bucket's interval between requests and how far ahead of it a burst may run."""

    def __init__(self, rate: float):
        capacity = max(1.0, rate * BURST_SECONDS)
        self.interval = 1.0 / rate
        self.tolerance = (capacity - 1.0) / rate


class RateBudget:
    def __init__(self, per_second: float, per_endpoint: float, redis_url: str = ""):
        self.per_second = per_second
        self.per_endpoint = per_endpoint
        self._account, self._endpoint = _Bucket(per_second), _Bucket(per_endpoint)
        self._redis = redis.Redis.from_url(redis_url) if redis_url else None
        self._script = self._redis.register_script(_BOOK_BOTH) if self._redis else None
        self._lock = threading.Lock()
        self._due: dict[str, float] = {}  # bucket -> when its next request is due, without Redis
        self._used: dict[int, int] = {}  # requests let through per wall-clock second, without Redis

    def take(self, endpoint: str, max_wait: float = 0.0) -> float:
        """Book the next moment both the account and the endpoint allow a request; the seconds until it.
        A moment more than `max_wait` seconds away is answered but not booked."""
        if self._script is not None:
            args = [self._account.interval, self._account.tolerance, self._endpoint.interval]
            args += [self._endpoint.tolerance, max_wait]
            keys = ["stripe:budget:due:account", f"stripe:budget:due:{endpoint}", _used_key(int(time.time()))]
            return float(self._script(keys=keys, args=args))
        with self._lock:
            now = time.monotonic()
            buckets = {"account": self._account, endpoint: self._endpoint}
            due = {name: max(now, self._due.get(name, now)) for name in buckets}
            at = max(now, *(due[name] - bucket.tolerance for name, bucket in buckets.items()))
            if at - now > max_wait:
                return at - now
            for name, bucket in buckets.items():
                self._due[name] = max(due[name], at) + bucket.interval
            second = int(time.time())
            self._used[second] = self._used.get(second, 0) + 1
            for old in [at_second for at_second in self._used if at_second < second - USAGE_WINDOW_SECONDS]:
                del self._used[old]
            return at - now

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
        """Block until the request may go; False (nothing booked) if that would take longer than `max_wait`."""
        wait = self.take(endpoint, max_wait)
        if wait > max_wait:
            return False
        if wait > 0:
            time.sleep(wait)
        return True


@cache
def _budget(per_second: float, per_endpoint: float, redis_url: str) -> RateBudget:
    return RateBudget(per_second, per_endpoint, redis_url)


def rate_budget() -> RateBudget:
    """The budget for the current settings (one per process and configuration)."""
    return _budget(
        settings.STRIPE_RATE_LIMIT_PER_SECOND, settings.STRIPE_RATE_LIMIT_PER_ENDPOINT, settings.COORDINATION_REDIS_URL
    )
