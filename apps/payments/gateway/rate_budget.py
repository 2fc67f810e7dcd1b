"""A request budget for Stripe shared by every worker: token buckets for the account and per endpoint.

The buckets are kept as GCRA (the "virtual scheduling" form of a token bucket): each holds the
time its next request is due. A request is given its moment, booked at once; it sleeps until
then and goes, instead of asking again and again while the bucket refills (ten asks per
request, and as much of a worker's CPU, when sixteen threads wait on a full budget). A request
its endpoint holds back books the endpoint's moment first and the account's when that comes,
so a queue on one endpoint never delays the others. A moment further than the caller will
wait books nothing. The account is booked at the moment the request goes, so requests never
exceed `capacity + rate * window` in any window, in whatever order their sleeps end.

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

# KEYS: account, endpoint, this second's usage counter. ARGV (microseconds): per bucket its interval (1 / rate)
# and its tolerance ((capacity - 1) / rate), the longest wait the caller accepts, then the mode. Answers
# "<wait in microseconds> <1 when the account is still to be booked>".
# Mode "both": when the endpoint allows the request now, both buckets are booked at the account's moment;
# when the endpoint is the one that makes it wait, only the endpoint is booked, and the account is booked
# (mode "account") when that moment comes: a queue on one endpoint never holds the account's moments, which
# every other endpoint (a buyer's checkout) shares.
_BOOK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local max_wait = tonumber(ARGV[5])
local function moment(key, tolerance)
  local due = math.max(now, tonumber(redis.call('GET', key)) or now)
  return due, math.max(now, due - tolerance)
end
local function book(key, due, at, interval)
  redis.call('SET', key, string.format('%.0f', math.max(due, at) + interval), 'EX', 60)
end
local function counted()
  redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], 120)
end
local due_a, at_a = moment(KEYS[1], tonumber(ARGV[2]))
if ARGV[6] == 'account' then
  if at_a - now > max_wait then return string.format('%.0f 0', at_a - now) end
  book(KEYS[1], due_a, at_a, tonumber(ARGV[1]))
  counted()
  return string.format('%.0f 0', at_a - now)
end
local due_e, at_e = moment(KEYS[2], tonumber(ARGV[4]))
if at_e > now then
  if at_e - now > max_wait then return string.format('%.0f 0', at_e - now) end
  book(KEYS[2], due_e, at_e, tonumber(ARGV[3]))
  return string.format('%.0f 1', at_e - now)
end
if at_a - now > max_wait then return string.format('%.0f 0', at_a - now) end
book(KEYS[1], due_a, at_a, tonumber(ARGV[1]))
book(KEYS[2], due_e, at_a, tonumber(ARGV[3]))
counted()
return string.format('%.0f 0', at_a - now)
"""
MICRO = 1_000_000


def _used_key(second: int) -> str:
    return f"stripe:budget:used:{second}"


def endpoint_of(method: str, path: str) -> str:
    """`POST /v1/products/{id}` for `POST /v1/products/prod_123`: ids do not make new endpoints."""
    segments = ["{id}" if _ID_SEGMENT.match(segment) else segment for segment in path.split("?")[0].split("/")]
    return f"{method.upper()} {'/'.join(segments)}"


class _Bucket:
    """A bucket's interval between requests and how far ahead of it a burst may run, in microseconds."""

    def __init__(self, rate: float):
        capacity = max(1.0, rate * BURST_SECONDS)
        self.interval = round(MICRO / rate)
        self.tolerance = round((capacity - 1.0) * MICRO / rate)


class RateBudget:
    def __init__(self, per_second: float, per_endpoint: float, redis_url: str = ""):
        self.per_second = per_second
        self.per_endpoint = per_endpoint
        self._account, self._endpoint = _Bucket(per_second), _Bucket(per_endpoint)
        # Short timeouts: it is asked before every Stripe call, a web request's too.
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2) if redis_url else None
        self._script = self._redis.register_script(_BOOK) if self._redis else None
        self._lock = threading.Lock()
        self._due: dict[str, int] = {}  # bucket -> when its next request is due (microseconds), without Redis
        self._used: dict[int, int] = {}  # requests let through per wall-clock second, without Redis

    def _book(self, endpoint: str, max_wait: float, mode: str) -> tuple[float, bool]:
        """Book a moment (see `_BOOK`): the seconds until it, and whether the account is still to be booked."""
        if self._script is not None:
            args = [self._account.interval, self._account.tolerance, self._endpoint.interval]
            args += [self._endpoint.tolerance, round(max_wait * MICRO), mode]
            keys = ["stripe:budget:due:account", f"stripe:budget:due:{endpoint}", _used_key(int(time.time()))]
            wait, pending = self._script(keys=keys, args=args).split()
            return int(wait) / MICRO, pending == b"1"
        with self._lock:
            return self._book_here(endpoint, round(max_wait * MICRO), mode)

    def _book_here(self, endpoint: str, max_wait: int, mode: str) -> tuple[float, bool]:
        """`_BOOK`, in this process."""
        now = round(time.monotonic() * MICRO)

        def moment(name: str, bucket: _Bucket) -> tuple[int, int]:
            due = max(now, self._due.get(name, now))
            return due, max(now, due - bucket.tolerance)

        def book(name: str, bucket: _Bucket, due: int, at: int) -> None:
            self._due[name] = max(due, at) + bucket.interval

        due_a, at_a = moment("account", self._account)
        if mode == "both":
            due_e, at_e = moment(endpoint, self._endpoint)
            if at_e > now:
                if at_e - now <= max_wait:
                    book(endpoint, self._endpoint, due_e, at_e)
                    return (at_e - now) / MICRO, True
                return (at_e - now) / MICRO, False
        if at_a - now > max_wait:
            return (at_a - now) / MICRO, False
        book("account", self._account, due_a, at_a)
        if mode == "both":
            book(endpoint, self._endpoint, due_e, at_a)
        second = int(time.time())
        self._used[second] = self._used.get(second, 0) + 1
        for old in [at_second for at_second in self._used if at_second < second - USAGE_WINDOW_SECONDS]:
            del self._used[old]
        return (at_a - now) / MICRO, False

    def take(self, endpoint: str) -> float:
        """Book the request now if the account and the endpoint both allow it; else (booking nothing) the
        seconds until they might."""
        return self._book(endpoint, 0.0, "both")[0]

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
        """Block until the request may go; False if that would take longer than `max_wait` (a moment of its
        endpoint booked by then goes unused: the budget errs on the side of fewer requests)."""
        deadline = time.monotonic() + max_wait
        wait, account_pending = self._book(endpoint, max_wait, "both")
        if wait > max_wait:
            return False
        if wait > 0:
            time.sleep(wait)
        if account_pending:
            remaining = max(0.0, deadline - time.monotonic())
            wait, _ = self._book(endpoint, remaining, "account")
            if wait > remaining:
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
