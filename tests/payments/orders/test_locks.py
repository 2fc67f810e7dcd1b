"""The orders' locks (apps/payments/orders/locks.py): a user's row while a checkout decides which order a cart is,
an order's row while anything changes it; each held until its transaction ends.

Here the locks themselves, with a second database connection in a thread playing the twin request or the late
event; the thread is seen waiting through PostgreSQL's own `pg_blocking_pids`, never by sleeping. What the
services built on them decide (the same cart again finding its order, a refund and a late event on one order)
is in tests/payments/orders/test_checkout.py and tests/payments/orders/test_lifecycle.py.
"""

import threading
import time

import pytest
from django.db import connection, transaction

from apps.payments.orders.checkout import order_for_cart
from apps.payments.orders.lifecycle import CartLine, order_create
from apps.payments.orders.locks import order_lock, user_lock
from apps.payments.orders.models import Order, OrderStatus
from tests.catalog.factories import PriceFactory
from tests.payments.factories import OrderFactory
from tests.users.factories import UserFactory

WAIT_LIMIT_SECONDS = 10  # how long a broken lock may leave a thread hanging before the test fails


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _until_blocked_by_us(pid: int) -> None:
    """Return once the backend `pid` waits for a lock this connection holds."""
    ours = _backend_pid()
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_blocking_pids(%s)", [pid])
            if ours in cursor.fetchone()[0]:
                return
    raise AssertionError(f"backend {pid} never waited for this transaction's lock")


class Twin(threading.Thread):
    """Runs `work` on a connection of its own; `pid` is known once `started` is set."""

    def __init__(self, work):
        super().__init__()
        self.work, self.started, self.pid, self.result, self.error = work, threading.Event(), None, None, None

    def run(self) -> None:
        try:
            self.pid = _backend_pid()
            self.started.set()
            self.result = self.work()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error
        finally:
            self.started.set()
            connection.close()

    def outcome(self):
        self.join(timeout=WAIT_LIMIT_SECONDS)
        assert not self.is_alive(), "the twin is still waiting"
        if self.error is not None:
            raise self.error
        return self.result


@pytest.mark.django_db(transaction=True)
class TestUserLock:
    def test_a_double_click_waits_for_its_twin_and_finds_the_order_it_made(self):
        ada, teapot = UserFactory(), PriceFactory(currency="eur")
        lines = [CartLine(price=teapot, quantity=1)]
        twin = Twin(lambda: order_for_cart(user=ada, lines=lines, fingerprint="cart"))

        with transaction.atomic():
            user_lock(ada.pk)
            twin.start()
            assert twin.started.wait(WAIT_LIMIT_SECONDS)
            _until_blocked_by_us(twin.pid)
            made = order_create(user=ada, lines=lines, cart_fingerprint="cart")

        assert twin.outcome() == made
        assert Order.objects.count() == 1

    def test_another_users_checkout_does_not_wait(self):
        ada, bob, teapot = UserFactory(), UserFactory(), PriceFactory(currency="eur")
        lines = [CartLine(price=teapot, quantity=1)]
        twin = Twin(lambda: order_for_cart(user=bob, lines=lines, fingerprint="cart"))

        with transaction.atomic():
            user_lock(ada.pk)
            twin.start()
            bobs = twin.outcome()  # finished while ada's lock is still held

        assert bobs.user == bob


@pytest.mark.django_db(transaction=True)
class TestOrderLock:
    def test_the_second_to_lock_an_order_waits_and_then_sees_it_as_the_first_left_it(self):
        order = OrderFactory()
        twin = Twin(lambda: _locked_status(order.pk))

        with transaction.atomic():
            order_lock(order.pk)
            twin.start()
            assert twin.started.wait(WAIT_LIMIT_SECONDS)
            _until_blocked_by_us(twin.pid)
            Order.objects.filter(pk=order.pk).update(status=OrderStatus.PAID)

        assert twin.outcome() == OrderStatus.PAID


def _locked_status(order_id: int) -> str:
    with transaction.atomic():
        return order_lock(order_id).status


@pytest.mark.django_db
class TestOrderLockReads:
    def test_the_order_is_read_as_it_now_is_not_as_the_caller_last_saw_it(self):
        order = OrderFactory()
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.FAILED)

        with transaction.atomic():
            locked = order_lock(order.pk)

        assert (order.status, locked.status) == (OrderStatus.PENDING, OrderStatus.FAILED)

    def test_an_order_that_does_not_exist_cannot_be_locked(self):
        with pytest.raises(Order.DoesNotExist), transaction.atomic():
            order_lock(999_999)
