"""Signed delivery of events to webhook endpoints, outside the request that caused them.

Like Stripe: each enabled endpoint whose `enabled_events` match gets the event as
JSON, signed `Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256 of "t.payload">`; a
non-2xx answer or a timeout is retried with exponential backoff. For tests the
delivery can also duplicate, shuffle, delay, pause and flush.
"""

import hashlib
import heapq
import hmac
import http.client
import itertools
import json
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .store import Store

log = logging.getLogger("stripe_emulator.webhooks")

DEFAULT_OPTIONS = {
    "duplicate_ratio": 0.0,  # share of events sent a second time
    "shuffle": False,  # deliver in random order within shuffle_window_ms
    "shuffle_window_ms": 300,
    "delay_ms": 0,  # hold every delivery this long
    "paused": False,  # hold everything until flushed or unpaused
    "max_attempts": 8,
    "retry_base_seconds": 1.0,  # Stripe waits hours; tests cannot
    "retry_max_seconds": 60.0,
    "timeout_seconds": 10.0,
}


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(order=True)
class Delivery:
    due: float
    seq: int
    endpoint_id: str = field(compare=False)
    event_id: str = field(compare=False)
    attempt: int = field(compare=False, default=1)
    forced: bool = field(compare=False, default=False)


class Dispatcher:
    def __init__(self, store: Store, senders: int = 4):
        self.store = store
        self.options = dict(DEFAULT_OPTIONS)
        self._queue: list[Delivery] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._stopping = False
        self.attempts: deque[dict] = deque(maxlen=50_000)
        self._threads = [
            threading.Thread(target=self._run, name=f"webhook-sender-{n}", daemon=True) for n in range(senders)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    # -- scheduling (called with the store lock held) ---------------------------------------

    def event_created(self, event: dict) -> None:
        endpoints = [
            endpoint
            for endpoint in self.store.objects["webhook_endpoint"].values()
            if endpoint["status"] == "enabled"
            and ("*" in endpoint["enabled_events"] or event["type"] in endpoint["enabled_events"])
        ]
        for endpoint in endpoints:
            copies = 2 if random.random() < self.options["duplicate_ratio"] else 1
            for _ in range(copies):
                event["pending_webhooks"] += 1
                self._schedule(endpoint["id"], event["id"], attempt=1, delay=self._first_delay())

    def _first_delay(self) -> float:
        delay = self.options["delay_ms"] / 1000
        if self.options["shuffle"]:
            delay += random.uniform(0, self.options["shuffle_window_ms"] / 1000)
        return delay

    def _schedule(self, endpoint_id: str, event_id: str, *, attempt: int, delay: float) -> None:
        with self._cond:
            heapq.heappush(
                self._queue, Delivery(time.monotonic() + delay, next(self._seq), endpoint_id, event_id, attempt)
            )
            self._cond.notify()

    # -- control -----------------------------------------------------------------------------------

    def configure(self, **changes) -> dict:
        with self._cond:
            for key, value in changes.items():
                if key not in DEFAULT_OPTIONS:
                    raise KeyError(key)
                self.options[key] = type(DEFAULT_OPTIONS[key])(value)
            self._cond.notify_all()
            return dict(self.options)

    def flush(self) -> int:
        """Send everything waiting now: held, delayed or backing off."""
        with self._cond:
            moment = time.monotonic()
            for delivery in self._queue:
                delivery.due, delivery.forced = moment, True
            heapq.heapify(self._queue)
            if self.options["shuffle"]:
                random.shuffle(self._queue)
                for position, delivery in enumerate(self._queue):
                    delivery.seq = position
                heapq.heapify(self._queue)
            self._cond.notify_all()
            return len(self._queue)

    def clear(self) -> None:
        """Forget every delivery, and wait for those being sent to be answered: after a reset none reaches an
        endpoint (the next test's server, say), and none fails into a retry of a forgotten event."""
        with self._cond:
            self._queue.clear()
            self.attempts.clear()
            deadline = time.monotonic() + self.options["timeout_seconds"] + 1
            while self._in_flight and (remaining := deadline - time.monotonic()) > 0:
                self._cond.wait(min(remaining, 0.05))
            self._queue.clear()  # what a send that failed meanwhile scheduled again
            self.options = dict(DEFAULT_OPTIONS)

    def status(self) -> dict:
        with self._cond:
            return {"options": dict(self.options), "queued": len(self._queue), "in_flight": self._in_flight}

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or being sent (held deliveries count as queued)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    # -- sending ---------------------------------------------------------------------------------------

    def _next(self) -> Delivery | None:
        with self._cond:
            while not self._stopping:
                if self._queue:
                    head = self._queue[0]
                    wait = head.due - time.monotonic()
                    if (not self.options["paused"] or head.forced) and wait <= 0:
                        self._in_flight += 1
                        return heapq.heappop(self._queue)
                    self._cond.wait(0.05 if self.options["paused"] else max(wait, 0.001))
                else:
                    self._cond.wait(0.5)
            return None

    def _run(self) -> None:
        while (delivery := self._next()) is not None:
            try:
                self._deliver(delivery)
            except Exception:  # a sender thread must survive anything one delivery does
                log.exception("webhook delivery crashed event=%s", delivery.event_id)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _deliver(self, delivery: Delivery) -> None:
        with self.store.lock:
            endpoint = self.store.get("webhook_endpoint", delivery.endpoint_id)
            event = self.store.get("event", delivery.event_id)
            secret = self.store.webhook_secrets.get(delivery.endpoint_id)
            if endpoint is None or event is None or secret is None:
                if event is not None:
                    event["pending_webhooks"] = max(0, event["pending_webhooks"] - 1)
                return
            url = endpoint["url"]
            payload = json.dumps(event, indent=2).encode()
        status, error = self._post(url, payload, secret)
        ok = status is not None and 200 <= status < 300
        self.attempts.append(
            {
                "event": delivery.event_id,
                "type": event["type"],
                "endpoint": delivery.endpoint_id,
                "attempt": delivery.attempt,
                "status": status,
                "error": error,
                "at": time.time(),
            }
        )
        if ok or delivery.attempt >= self.options["max_attempts"]:
            with self.store.lock:
                event["pending_webhooks"] = max(0, event["pending_webhooks"] - 1)
            if not ok:
                log.warning(
                    "webhook gave up event=%s endpoint=%s attempts=%s", delivery.event_id, url, delivery.attempt
                )
            return
        backoff = min(
            self.options["retry_base_seconds"] * 2 ** (delivery.attempt - 1), self.options["retry_max_seconds"]
        )
        self._schedule(delivery.endpoint_id, delivery.event_id, attempt=delivery.attempt + 1, delay=backoff)

    def _post(self, url: str, payload: bytes, secret: str) -> tuple[int | None, str | None]:
        parts = urlsplit(url)
        connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(parts.hostname, parts.port, timeout=self.options["timeout_seconds"])
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(payload, secret, int(time.time())),
        }
        try:
            connection.request("POST", path, body=payload, headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status, None
        except OSError as exc:
            return None, f"{exc.__class__.__name__}: {exc}"
        finally:
            connection.close()
