"""Whether the holder of a mirror lease is still alive.

A lease lasts longer than any task may run, so it never runs out under a holder that is still pushing. But a
worker that is killed (SIGKILL, a machine lost) leaves its leases to run out, and until then nobody may push
those objects: a checkout that needs one waits and answers 503. So while `mirror_sync` runs, its process
keeps a key per owner fresh in Redis (every `REFRESH_SECONDS`, living `ALIVE_SECONDS`); a lease whose
holder's key is gone belongs to no one and is taken over at once.

The key is written before the lease is taken, so whoever sees the lease can see the key. A holder starved
for `ALIVE_SECONDS` may lose its lease while still pushing: its request carries the same idempotency key as
its successor's, so Stripe makes one object, and its completion finds the lease lost. Without Redis
(`make run`) a lease runs out by its length, as before.
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
        try:
            self.client.set(_key(owner), "1", ex=ALIVE_SECONDS)
        except redis.RedisError as error:  # others cannot ask either: to them the lease stands until it runs out
            log.warning("mirror lease heartbeat failed error=%s", error)
        with self.lock:
            self.owners[owner] += 1
            if self.pid != os.getpid():  # the first holder here, or a forked child: it inherits no thread
                self.pid = os.getpid()
                threading.Thread(target=self._refresh, name="mirror-lease-heartbeat", daemon=True).start()

    def release(self, owner: str) -> None:
        with self.lock:
            self.owners[owner] -= 1
            gone = self.owners[owner] <= 0
            if gone:
                del self.owners[owner]
        if gone:
            with contextlib.suppress(redis.RedisError):  # it expires by itself
                self.client.delete(_key(owner))

    def alive(self, owner: str) -> bool:
        return bool(self.client.exists(_key(owner)))

    def _refresh(self) -> None:
        while True:
            time.sleep(REFRESH_SECONDS)
            with self.lock:
                owners = list(self.owners)
            if not owners:
                continue
            try:
                pipe = self.client.pipeline(transaction=False)
                for owner in owners:
                    pipe.set(_key(owner), "1", ex=ALIVE_SECONDS)
                pipe.execute()
            except redis.RedisError as error:  # the next beat tries again; a lease lost meanwhile is handled
                log.warning("mirror lease heartbeat failed error=%s", error)


@cache
def _heartbeat(url: str) -> Heartbeat | None:
    return Heartbeat(redis.Redis.from_url(url)) if url else None


def heartbeat() -> Heartbeat | None:
    return _heartbeat(settings.COORDINATION_REDIS_URL)


@contextmanager
def holding(owner: str) -> Iterator[None]:
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


def holder_alive(owner: str) -> bool:
    """Whether the process that took a lease for `owner` still runs (when unsure: yes, the lease stands)."""
    beat = heartbeat()
    if beat is None:
        return True
    try:
        return beat.alive(owner)
    except redis.RedisError:
        return True
