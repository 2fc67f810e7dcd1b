"""Billing's one lock (apps/payments/billing/locks.py): a subscription's state is stored by one process at a
time, a read is stored only if nothing was stored since it began, and a web request storing Stripe's answer to
its own change never waits for a drain that holds the lock.

Here the versions and the lock themselves, with a second database connection playing the drain. What the
services built on them do (a read stored or read again, an answer stored or left to a worker) is in
tests/payments/billing/test_store.py and tests/payments/billing/test_changes.py; a change made while a real
worker stores the subscription is covered in tests/journeys/test_subscriptions.py
(`test_a_change_never_waits_for_a_worker_storing_the_subscription`).
"""

import threading

import pytest
from django.db import connection, transaction

from apps.payments.billing.locks import stored_version, storing_answer, storing_state
from apps.payments.billing.models import SubscriptionVersion

pytestmark = pytest.mark.django_db


def test_a_subscription_never_stored_is_at_version_zero_and_each_store_moves_it_on():
    assert stored_version("sub_1") == 0

    with storing_state("sub_1") as store:
        assert store is True
    with storing_state("sub_1"):
        pass

    assert stored_version("sub_1") == 2


def test_a_read_is_stored_only_if_nothing_was_stored_since_it_began():
    seen = stored_version("sub_1")
    with storing_state("sub_1"):  # another process stores meanwhile
        pass

    with storing_state("sub_1", read_since=seen) as stale:
        pass
    with storing_state("sub_1", read_since=stored_version("sub_1")) as fresh:
        pass

    assert (stale, fresh) == (False, True)
    assert stored_version("sub_1") == 2  # the stale read moved nothing


def test_a_requests_own_answer_is_stored_and_says_whether_a_store_came_in_since_it_asked():
    asked_at = stored_version("sub_1")
    with storing_answer("sub_1", asked_at=asked_at) as first:
        pass
    with storing_answer("sub_1", asked_at=asked_at) as overtaken:  # the first store came in since
        pass

    assert (first, overtaken) == ((True, False), (True, True))
    assert stored_version("sub_1") == 2


def test_a_request_never_waits_for_a_drain_storing_the_subscription():
    drain_holds_it, request_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            SubscriptionVersion.objects.create(key="sub_busy")  # committed: the request sees the row
            with transaction.atomic():
                SubscriptionVersion.objects.select_for_update().get(key="sub_busy")
                drain_holds_it.set()
                request_done.wait(timeout=10)  # a request that waited would get the lock only then
            SubscriptionVersion.objects.filter(key="sub_busy").delete()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
            drain_holds_it.set()
        finally:
            connection.close()

    thread = threading.Thread(target=drain)
    thread.start()
    assert drain_holds_it.wait(timeout=10)
    try:
        with storing_answer("sub_busy", asked_at=0) as answer:
            pass
    finally:
        request_done.set()
        thread.join(timeout=10)

    assert errors == []
    assert answer == (False, True)  # not stored here: a worker reads it again
