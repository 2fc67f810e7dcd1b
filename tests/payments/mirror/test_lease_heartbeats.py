"""Whether the holder of a mirror lease is still alive (apps/payments/mirror/lease_heartbeats.py): while a push
runs, its owner's key is kept in Redis, refreshed by one thread per process and gone once the last push of that
owner ends; with Redis unsure or not configured, a lease stands; without Redis taking the key, no lease is taken.

Here on this test run's own coordination Redis, the refresh thread's loop run in the test's thread with its
sleep counted rather than slept. What `acquire` does with a holder that is alive or gone is in
tests/payments/mirror/test_leases.py; a worker killed mid-push and taken over in
tests/journeys/test_mirror_faults.py.
"""

import logging
import threading
import types

import pytest
import redis
from django.conf import settings as django_settings

from apps.payments.mirror import lease_heartbeats
from apps.payments.mirror.lease_heartbeats import ALIVE_SECONDS, REFRESH_SECONDS, Heartbeat, is_alive, keep_alive

UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


@pytest.fixture
def coordination() -> redis.Redis:
    """This run's coordination Redis, with no holder keys before or after the test."""
    client = redis.Redis.from_url(django_settings.COORDINATION_REDIS_URL)
    _forget_holders(client)
    yield client
    _forget_holders(client)


def _forget_holders(client: redis.Redis) -> None:
    for key in client.scan_iter("mirror:holder:*"):
        client.delete(key)


class Threads:
    """Stands in for `threading` in the module: records the refresh threads it would start."""

    Lock = threading.Lock

    def __init__(self):
        self.started: list[str] = []

    def Thread(self, target, name, daemon):  # the signature `threading.Thread` is called with here
        started = self.started
        return types.SimpleNamespace(start=lambda: started.append(name))


@pytest.fixture
def threads(monkeypatch) -> Threads:
    fake = Threads()
    monkeypatch.setattr(lease_heartbeats, "threading", fake)
    return fake


class StopRefreshing(BaseException):
    """Ends the refresh loop (it outlives any `Exception`)."""


def _refresh_rounds(beat: Heartbeat, rounds: int, monkeypatch, between=None) -> list[float]:
    """Run the refresh loop for `rounds` rounds in this thread; `between()` runs before each. Answers the
    sleeps it asked for. Other threads still sleep for real."""
    asked: list[float] = []
    me, real = threading.current_thread(), lease_heartbeats.time.sleep

    def sleep(seconds: float) -> None:
        if threading.current_thread() is not me:
            return real(seconds)
        if len(asked) == rounds:
            raise StopRefreshing
        asked.append(seconds)
        if between is not None:
            between()
        return None

    monkeypatch.setattr(lease_heartbeats, "time", types.SimpleNamespace(sleep=sleep))
    with pytest.raises(StopRefreshing):
        beat._refresh()
    return asked


class TestKeepAlive:
    def test_an_owner_is_alive_exactly_while_its_push_runs(self, coordination):
        before = is_alive("worker-1")
        with keep_alive("worker-1"):
            during = is_alive("worker-1")
        after = is_alive("worker-1")

        assert (before, during, after) == (False, True, False)

    def test_its_key_lives_a_few_refreshes_so_a_killed_worker_is_known_gone_within_seconds(self, coordination):
        with keep_alive("worker-1"):
            ttl = coordination.ttl("mirror:holder:worker-1")

        assert REFRESH_SECONDS < ttl <= ALIVE_SECONDS

    def test_an_owner_with_two_pushes_under_way_stays_alive_until_the_last_ends(self, coordination):
        with keep_alive("worker-1"):
            with keep_alive("worker-1"):
                pass
            still = is_alive("worker-1")

        assert still is True
        assert is_alive("worker-1") is False

    def test_owners_are_alive_each_on_their_own(self, coordination):
        with keep_alive("worker-1"):
            other = is_alive("worker-2")
            with keep_alive("worker-2"):
                pass
            mine = is_alive("worker-1")

        assert (other, mine) == (False, True)

    def test_a_push_that_fails_still_gives_its_key_back(self, coordination):
        with pytest.raises(RuntimeError), keep_alive("worker-1"):
            raise RuntimeError("Stripe broke the push")

        assert is_alive("worker-1") is False


class TestWithoutRedis:
    def test_without_redis_configured_a_push_runs_and_every_lease_stands(self, settings):
        settings.COORDINATION_REDIS_URL = ""

        with keep_alive("worker-1"):
            pass

        assert is_alive("a-worker-killed-long-ago") is True

    def test_with_redis_unreachable_no_push_starts(self, settings):
        settings.COORDINATION_REDIS_URL = UNREACHABLE
        pushed = []

        with pytest.raises(redis.RedisError), keep_alive("worker-1"):
            pushed.append(True)

        assert pushed == []

    def test_with_redis_unreachable_a_lease_is_taken_to_stand(self, settings):
        settings.COORDINATION_REDIS_URL = UNREACHABLE

        assert is_alive("worker-1") is True

    def test_a_key_that_cannot_be_deleted_is_left_to_expire_without_failing_the_push(self, coordination, threads):
        beat = Heartbeat(coordination)
        beat.hold("worker-1")
        beat.client = redis.Redis.from_url(UNREACHABLE)

        beat.release("worker-1")

        assert beat.owners == {}
        assert 0 < coordination.ttl("mirror:holder:worker-1") <= ALIVE_SECONDS


class TestTheRefreshThread:
    def test_one_thread_per_process_starts_with_its_first_holder(self, coordination, threads):
        beat = Heartbeat(coordination)

        beat.hold("worker-1")
        beat.hold("worker-2")

        assert threads.started == ["mirror-lease-heartbeat"]

    def test_a_forked_child_starts_a_thread_of_its_own(self, coordination, threads):
        beat = Heartbeat(coordination)
        beat.hold("worker-1")
        beat.pid = -1  # as a child sees it: the thread was its parent's, and did not come along

        beat.hold("worker-2")

        assert threads.started == ["mirror-lease-heartbeat", "mirror-lease-heartbeat"]

    def test_the_keys_of_pushes_under_way_are_renewed_every_few_seconds(self, coordination, threads, monkeypatch):
        beat = Heartbeat(coordination)
        beat.hold("worker-1")
        coordination.expire("mirror:holder:worker-1", 1)  # about to run out

        asked = _refresh_rounds(beat, 1, monkeypatch)

        assert asked == [REFRESH_SECONDS]
        assert coordination.ttl("mirror:holder:worker-1") > 1

    def test_a_key_given_back_is_not_brought_back_by_a_refresh(self, coordination, threads, monkeypatch):
        beat = Heartbeat(coordination)
        beat.hold("worker-1")
        beat.hold("worker-2")
        beat.release("worker-1")

        _refresh_rounds(beat, 2, monkeypatch)

        assert (beat.alive("worker-1"), beat.alive("worker-2")) == (False, True)

    def test_a_failed_refresh_is_logged_and_the_next_one_still_runs(self, coordination, threads, monkeypatch, caplog):
        beat = Heartbeat(coordination)
        beat.hold("worker-1")
        coordination.delete("mirror:holder:worker-1")  # Redis lost it meanwhile
        clients = iter([redis.Redis.from_url(UNREACHABLE), coordination])

        def swap_client() -> None:
            beat.client = next(clients)

        with caplog.at_level(logging.WARNING, logger="apps.payments.mirror"):
            _refresh_rounds(beat, 2, monkeypatch, between=swap_client)

        assert "mirror lease heartbeat failed" in caplog.text
        assert beat.alive("worker-1") is True
