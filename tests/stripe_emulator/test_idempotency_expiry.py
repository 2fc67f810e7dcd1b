"""Pure logic, isolated: Stripe forgets idempotency keys after 24 hours (no test can wait that long over HTTP)."""

import pytest

from tools.stripe_emulator import idempotency
from tools.stripe_emulator.errors import UnsavedError


@pytest.fixture
def clock(monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(idempotency.time, "time", lambda: now[0])
    return now


def test_a_key_is_remembered_for_24_hours_then_forgotten(clock):
    cache = idempotency.IdempotencyCache()
    assert cache.begin("sk", "key", "params-a", "req_1") is None
    cache.finish("sk", "key", 200, b"{}", {})

    clock[0] += 24 * 3600 - 1
    with pytest.raises(UnsavedError):
        cache.begin("sk", "key", "params-b", "req_2")  # still remembered: other params conflict
    clock[0] += 2
    assert cache.begin("sk", "key", "params-b", "req_3") is None  # forgotten: a new request
