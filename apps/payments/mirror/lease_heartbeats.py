"""Whether the holder of a mirror lease is still alive.

A lease lasts longer than any task may run, so it never runs out under a holder that is still pushing. But a
worker that is killed (SIGKILL, a machine lost) leaves its leases to run out, and until then nobody may push
those objects: a checkout that needs one waits and answers 503. So while `mirror_sync` runs, its process
keeps a key per owner fresh in Redis (every `REFRESH_SECONDS`, living `ALIVE_SECONDS`); a lease whose
holder's key is gone belongs to no one and is taken over at once.

The key is written before the lease is taken (no key, no lease), so whoever sees the lease can see the
key. What this trades: a holder stalled for `ALIVE_SECONDS` (or whose key Redis lost for longer than a
refresh) may lose its lease while still pushing. Its completion then reports the lease lost and records
nothing; if its write reaches Stripe after its successor's, Stripe holds the older state until the next
change or `stripe_reconcile` repairs it. Without Redis (`make run`) a lease runs out by its length.
"""

import contextlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import redis
from django.conf import settings

log = logging.getLogger("apps.payments.mirror")

ALIVE_SECONDS = 8
REFRESH_SECONDS = 2


def _key(owner: str) -> str:
    return f"mirror:holder:{owner}"


class Heartbeat:
    """The owners this process is pushing for, kept alive in Redis by one thread per process."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self.owners: Counter = Counter()
        self.lock = threading.Lock()
        self.pid: int | None = None

    def hold(self, owner: str) -> None:
        """Raises `redis.RedisError` when Redis cannot take the key: no lease is taken without it."""
        with self.lock:
            self.client.set(_key(owner), "1", ex=ALIVE_SECONDS)
            self.owners[owner] += 1
            if self.pid != os.getpid():  # the first holder here, or a forked child: it inherits no thread
                self.pid = os.getpid()
                threading.Thread(target=self._refresh, name="mirror-lease-heartbeat", daemon=True).start()

    def release(self, owner: str) -> None:
        # Under the lock, as the refresh is: a refresh in flight never brings a released key back.
        with self.lock:
            self.owners[owner] -= 1
            if self.owners[owner] <= 0:
                del self.owners[owner]
                with contextlib.suppress(redis.RedisError):  # it expires by itself
                    self.client.delete(_key(owner))

    def alive(self, owner: str) -> bool:
        return bool(self.client.exists(_key(owner)))

    def _refresh(self) -> None:
        while True:
            time.sleep(REFRESH_SECONDS)
            try:
                with self.lock:
                    if not self.owners:
                        continue
                    pipe = self.client.pipeline(transaction=False)
                    for owner in self.owners:
                        pipe.set(_key(owner), "1", ex=ALIVE_SECONDS)
                    pipe.execute()
            except Exception as error:  # noqa: BLE001 - the heartbeat must outlive any one failure
                log.warning("mirror lease heartbeat failed error=%s", error)


@cache
def _heartbeat(url: str) -> Heartbeat | None:
    # Short timeouts: `is_alive` is asked while a row lock is held.
    return Heartbeat(redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)) if url else None


def heartbeat() -> Heartbeat | None:
    return _heartbeat(settings.COORDINATION_REDIS_URL)


@contextmanager
def keep_alive(owner: str) -> Iterator[None]:
    """While inside, `owner` (the pusher running here) counts as alive to everyone."""
    beat = heartbeat()
    if beat is None:
        yield
        return
    beat.hold(owner)
    try:
        yield
    finally:
        beat.release(owner)


def is_alive(owner: str) -> bool:
    """Whether the process that took a lease for `owner` still runs (when unsure: yes, the lease stands)."""
    beat = heartbeat()
    if beat is None:
        return True
    try:
        return beat.alive(owner)
    except redis.RedisError:
        return True
