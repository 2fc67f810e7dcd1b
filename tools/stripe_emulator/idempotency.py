"""Idempotency keys as Stripe documents them for API v1.

Per API key: the first response to a POST with a given key is remembered (errors
included, once the endpoint has started) and replayed to a retry with the same
parameters; other parameters get 400 `idempotency_error`; any request with the
key while the first is still running gets 409 `idempotency_key_in_use`, before
its parameters are compared. Keys live 24 hours.
"""

import threading
import time
from dataclasses import dataclass

from .errors import UnsavedError

TTL_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 255


@dataclass
class Saved:
    fingerprint: str
    created: float
    request_id: str
    status: int | None = None  # None while the first request is still running
    body: bytes = b""
    headers: dict | None = None


class IdempotencyCache:
    def __init__(self):
        self._entries: dict[tuple[str, str], Saved] = {}
        self._lock = threading.Lock()
        self._last_purge = time.monotonic()

    def begin(self, api_key: str, key: str, fingerprint: str, request_id: str) -> Saved | None:
        """The saved response to replay, or None when this request is the first (now marked running)."""
        if len(key) > MAX_KEY_LENGTH:
            raise UnsavedError(
                400,
                f"Invalid Idempotency-Key: it must be at most {MAX_KEY_LENGTH} characters long.",
                code="idempotency_key_too_long",
            )
        with self._lock:
            self._purge()
            saved = self._entries.get((api_key, key))
            if saved is None or time.time() - saved.created > TTL_SECONDS:
                self._entries[(api_key, key)] = Saved(fingerprint, time.time(), request_id)
                return None
            # While the first runs, any request with its key waits its turn, whatever it asks.
            if saved.status is None:
                raise UnsavedError(
                    409,
                    "There is currently another in-progress request using this Stripe token (probably the same "
                    "idempotency key). Please try again later.",
                    type="idempotency_error",
                    code="idempotency_key_in_use",
                )
            if saved.fingerprint != fingerprint:
                raise UnsavedError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they were first used "
                    f"with. Try using a key other than '{key}' if you meant to execute a different request.",
                    type="idempotency_error",
                )
            return saved

    def finish(self, api_key: str, key: str, status: int, body: bytes, headers: dict) -> None:
        with self._lock:
            saved = self._entries.get((api_key, key))
            if saved is not None:
                saved.status, saved.body, saved.headers = status, body, headers

    def forget(self, api_key: str, key: str) -> None:
        """The request failed before the endpoint ran: a retry with this key runs afresh."""
        with self._lock:
            self._entries.pop((api_key, key), None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _purge(self) -> None:
        if time.monotonic() - self._last_purge < 60:
            return
        self._last_purge = time.monotonic()
        cutoff = time.time() - TTL_SECONDS
        for key in [key for key, saved in self._entries.items() if saved.created < cutoff]:
            del self._entries[key]
