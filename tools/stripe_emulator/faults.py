"""Trouble on demand: injected errors and latency, and a rate limiter like Stripe's."""

import itertools
import random
import threading
import time
from dataclasses import asdict, dataclass, field

PHASES = ("before", "after", "saved", "answer")


@dataclass
class Fault:
    """A rule: requests whose method and path match get `latency_ms` and, if `status` is set, that error.

    `count` limits the rule to the next N matching requests, `ratio` to a random
    share of them (neither: all); `body_contains` to requests whose form body holds
    that text (`currency=huf`). A 400 is Stripe refusing the object itself, with
    `message` and `param`. `phase` says when the error strikes: `before`
    the endpoint runs (nothing happens, nothing is remembered), `after` it ran (the
    change is made and remembered for the idempotency key, the client only sees
    the error, as when a response is lost), or `saved` (the error itself is
    remembered and replayed, as Stripe does for a 500 raised while executing).
    A rule of phase `answer` has no error: its `latency_ms` delays the answer after
    the change is made and remembered (a client that dies meanwhile never hears it).
    """

    id: int
    status: int | None = None
    code: str = "rate_limit"
    count: int | None = None
    ratio: float | None = None
    latency_ms: int = 0
    path_prefix: str = "/v1/"
    method: str | None = None
    phase: str = "before"
    body_contains: str | None = None
    message: str | None = None
    param: str | None = None
    hits: int = field(default=0)

    def matches(self, method: str, path: str, body: str) -> bool:
        return (
            path.startswith(self.path_prefix)
            and (self.method is None or self.method == method)
            and (self.body_contains is None or self.body_contains in body)
        )

    def fires(self) -> bool:
        if self.count is not None:
            return self.count > 0
        if self.ratio is not None:
            return random.random() < self.ratio
        return True


class Faults:
    def __init__(self):
        self._rules: list[Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, **spec) -> dict:
        status = spec.get("status")
        if status is not None and status not in (400, 409, 429, 500, 502, 503):
            raise ValueError("status must be one of 400, 409, 429, 500, 502, 503")
        if spec.get("phase", "before") not in PHASES:
            raise ValueError(f"phase must be one of {', '.join(PHASES)}")
        if spec.get("phase") == "answer" and status is not None:
            raise ValueError("phase answer delays the answer of a change that is made: it takes no status")
        if spec.get("code", "rate_limit") not in ("rate_limit", "lock_timeout"):
            raise ValueError("code must be rate_limit or lock_timeout")
        ratio = spec.get("ratio")
        if ratio is not None and not 0 <= float(ratio) <= 1:
            raise ValueError("ratio must be between 0 and 1")
        fault = Fault(
            id=next(self._ids),
            status=None if status is None else int(status),
            code=spec.get("code", "rate_limit"),
            count=None if spec.get("count") is None else int(spec["count"]),
            ratio=None if ratio is None else float(ratio),
            latency_ms=int(spec.get("latency_ms") or 0),
            path_prefix=spec.get("path_prefix") or "/v1/",
            method=(spec.get("method") or None) and spec["method"].upper(),
            phase=spec.get("phase", "before"),
            body_contains=spec.get("body_contains") or None,
            message=spec.get("message") or None,
            param=spec.get("param") or None,
        )
        with self._lock:
            self._rules.append(fault)
        return asdict(fault)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict]:
        with self._lock:
            return [asdict(rule) for rule in self._rules]

    def pick(self, method: str, path: str, body: str = "") -> tuple[int, int, Fault | None]:
        """The latency to add before the work, the latency to add before the answer, and the error rule (if
        any) for one request."""
        latency, answer_latency, error_rule = 0, 0, None
        with self._lock:
            for rule in self._rules:
                if rule.status is not None and error_rule is not None:
                    continue  # one error per request; the next rule keeps its count for the next one
                if not rule.matches(method, path, body) or not rule.fires():
                    continue
                if rule.count is not None:
                    rule.count -= 1
                rule.hits += 1
                if rule.phase == "answer":
                    answer_latency += rule.latency_ms
                else:
                    latency += rule.latency_ms
                if rule.status is not None and error_rule is None:
                    error_rule = rule
            self._rules = [rule for rule in self._rules if rule.count is None or rule.count > 0]
        return latency, answer_latency, error_rule


class _Bucket:
    def __init__(self, rate: float):
        self.rate = rate
        self.tokens = rate
        self.updated = time.monotonic()

    def take(self) -> bool:
        moment = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (moment - self.updated) * self.rate)
        self.updated = moment
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RateLimiter:
    """Off until configured: then 429 above `per_second` for the account or `per_endpoint_per_second` per endpoint."""

    def __init__(self):
        self._lock = threading.Lock()
        self.per_second: float | None = None
        self.per_endpoint_per_second: float | None = None
        self._account: _Bucket | None = None
        self._endpoints: dict[str, _Bucket] = {}
        self.rejected = 0

    def configure(self, per_second=None, per_endpoint_per_second=None) -> dict:
        with self._lock:
            self.per_second = float(per_second) if per_second else None
            self.per_endpoint_per_second = float(per_endpoint_per_second) if per_endpoint_per_second else None
            self._account = _Bucket(self.per_second) if self.per_second else None
            self._endpoints = {}
            self.rejected = 0
            return self.status()

    def status(self) -> dict:
        return {
            "per_second": self.per_second,
            "per_endpoint_per_second": self.per_endpoint_per_second,
            "rejected": self.rejected,
        }

    def check(self, endpoint: str) -> str | None:
        """None when the request may go on, else Stripe's `Stripe-Rate-Limited-Reason`."""
        with self._lock:
            if self.per_endpoint_per_second:
                bucket = self._endpoints.setdefault(endpoint, _Bucket(self.per_endpoint_per_second))
                if not bucket.take():
                    self.rejected += 1
                    return "endpoint-rate"
            if self._account is not None and not self._account.take():
                self.rejected += 1
                return "global-rate"
            return None
