"""The request budget every worker shares (apps/payments/gateway/rate_budget.py): token buckets for the account
and per endpoint, booked in one Lua script on Redis's clock (or in the process without Redis); a request is given
its moment and sleeps until then, a queue on one endpoint never delays another, and what went through is counted
for the health page.

The first tests here wait in real time, as workers sharing the budget do; the ones after them read a clock of the
test's own. How the client turns a spent budget or an unreadable one into `StripeUnavailable` is in
tests/payments/gateway/test_client.py and tests/payments/gateway/test_policies.py.
"""

import threading
import time

import pytest
import redis

from apps.payments.gateway import rate_budget as budgets
from apps.payments.gateway.rate_budget import USAGE_WINDOW_SECONDS, RateBudget, endpoint_of, rate_budget


def test_endpoints_ignore_ids():
    assert endpoint_of("post", "/v1/products/prod_AbC123") == "POST /v1/products/{id}"
    assert (
        endpoint_of("GET", "/v1/checkout/sessions/cs_test_a1b2/line_items")
        == "GET /v1/checkout/sessions/{id}/line_items"
    )
    assert endpoint_of("POST", "/v1/customers") == "POST /v1/customers"


def test_resource_names_are_not_taken_for_ids():
    assert endpoint_of("POST", "/v1/payment_intents/pi_3Nx9/confirm") == "POST /v1/payment_intents/{id}/confirm"
    assert endpoint_of("GET", "/v1/payment_links/plink_1Q2w/line_items") == "GET /v1/payment_links/{id}/line_items"


def test_workers_sharing_the_budget_never_exceed_it_together(budget_redis):
    # Four "workers", each with its own budget object, as separate processes would have.
    budgets = [RateBudget(per_second=20, per_endpoint=100, redis_url=budget_redis) for _ in range(4)]
    granted: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 2.0

    def work(budget):
        while time.monotonic() < stop_at:
            if budget.acquire("POST /v1/customers", max_wait=0.5) and time.monotonic() < stop_at:
                with lock:
                    granted.append(time.monotonic())

    threads = [threading.Thread(target=work, args=(budget,)) for budget in budgets for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # 20/s for 2 s, plus the small burst the bucket starts with.
    assert 36 <= len(granted) <= 20 * 2 + 5
    for start in granted:
        assert sum(1 for at in granted if start <= at < start + 1.0) <= 20 + 4


def test_each_endpoint_has_its_own_budget(budget_redis):
    budget = RateBudget(per_second=1000, per_endpoint=5, redis_url=budget_redis)

    customers = sum(budget.take("POST /v1/customers") == 0 for _ in range(20))
    products = sum(budget.take("POST /v1/products") == 0 for _ in range(20))

    assert customers == products == 1  # the burst of a 5/s bucket is one request; the rest wait


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "in-process"])
def test_a_waiting_request_books_its_moment_instead_of_asking_again_and_a_refused_one_books_nothing(
    budget_redis, shared
):
    budget = RateBudget(per_second=100, per_endpoint=5, redis_url=budget_redis if shared else "")
    asks = []
    book = budget._book
    budget._book = lambda *args: asks.append(args) or book(*args)
    started = time.monotonic()

    for _ in range(5):  # one every 0.2 s
        assert budget.acquire("GET /v1/customers", max_wait=5)
    assert time.monotonic() - started >= 0.78
    assert len(asks) <= 2 * 5  # its endpoint's moment, then the account's: never a loop of asks

    assert not budget.acquire("GET /v1/customers", max_wait=0.01)
    time.sleep(0.21)
    assert budget.take("GET /v1/customers") == 0  # the refused request took no moment


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "in-process"])
def test_a_queue_on_one_endpoint_does_not_delay_another(budget_redis, shared):
    budget = RateBudget(per_second=100, per_endpoint=5, redis_url=budget_redis if shared else "")
    queued = [
        threading.Thread(target=budget.acquire, args=("POST /v1/products", 5)) for _ in range(10)
    ]  # two seconds of the products endpoint booked ahead
    for thread in queued:
        thread.start()
    time.sleep(0.1)

    started = time.monotonic()
    assert budget.acquire("POST /v1/checkout/sessions", max_wait=5)
    waited = time.monotonic() - started

    for thread in queued:
        thread.join()
    assert waited < 0.1


def test_the_budget_without_redis_works_in_one_process():
    budget = RateBudget(per_second=10, per_endpoint=10)
    started = time.monotonic()

    for _ in range(12):
        assert budget.acquire("GET /v1/customers", max_wait=5)

    assert time.monotonic() - started >= 0.9


def test_a_query_string_is_not_part_of_the_endpoint():
    assert endpoint_of("get", "/v1/customers/cus_Q1w2?expand[]=sources") == "GET /v1/customers/{id}"


UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


class Clock:
    """The module's `time`, moved by hand: `sleep` is recorded and moves both clocks instead of waiting."""

    def __init__(self):
        self.now, self.wall, self.slept = 1_000.0, 1_800_000_000.0, []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(budgets, "time", clock)
    return clock


class TestMomentsInOneProcess:
    def test_a_fifth_of_a_second_of_requests_goes_at_once_then_each_waits_its_turn(self, clock):
        budget = RateBudget(per_second=100, per_endpoint=10)  # an endpoint burst of 2, then one every 0.1 s

        waits = [budget.take("POST /v1/refunds") for _ in range(3)]
        clock.advance(0.1)
        after_its_turn = budget.take("POST /v1/refunds")

        assert waits == [0.0, 0.0, 0.1]
        assert after_its_turn == 0.0

    def test_a_request_sleeps_until_its_moment_then_goes(self, clock):
        budget = RateBudget(per_second=100, per_endpoint=10)
        budget.take("POST /v1/refunds")
        budget.take("POST /v1/refunds")

        assert budget.acquire("POST /v1/refunds", max_wait=1.0) is True
        assert clock.slept == [pytest.approx(0.1)]

    def test_a_moment_further_than_the_caller_waits_is_refused_without_sleeping_or_booking(self, clock):
        budget = RateBudget(per_second=100, per_endpoint=10)
        budget.take("POST /v1/refunds")
        budget.take("POST /v1/refunds")

        refused = budget.acquire("POST /v1/refunds", max_wait=0.05)
        clock.advance(0.1)

        assert (refused, clock.slept) == (False, [])
        assert budget.take("POST /v1/refunds") == 0.0  # the moment it was refused is still free

    def test_the_account_holds_back_every_endpoint_once_it_is_spent(self, clock):
        budget = RateBudget(per_second=10, per_endpoint=100)  # an account burst of 2

        waits = [budget.take(f"POST /v1/endpoint_{n}") for n in range(3)]

        assert waits == [0.0, 0.0, 0.1]


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "in-process"])
class TestWhatWentThrough:
    def test_requests_let_through_are_counted_per_second_over_the_last_ten(self, clock, budget_redis, shared):
        budget = RateBudget(per_second=10, per_endpoint=100, redis_url=budget_redis if shared else "")

        let_through = sum(budget.take(f"GET /v1/endpoint_{n}") == 0 for n in range(4))  # the account's burst: 2
        clock.advance(1)

        assert let_through == 2
        assert budget.requests_per_second() == 2 / USAGE_WINDOW_SECONDS
        assert budget.in_use() == pytest.approx(0.02)

    def test_requests_older_than_the_window_no_longer_count(self, clock, budget_redis, shared):
        budget = RateBudget(per_second=10, per_endpoint=100, redis_url=budget_redis if shared else "")
        budget.take("GET /v1/customers")

        clock.advance(USAGE_WINDOW_SECONDS + 1)

        assert budget.requests_per_second() == 0.0


def test_workers_count_into_one_total(clock, budget_redis):
    first = RateBudget(per_second=100, per_endpoint=100, redis_url=budget_redis)
    second = RateBudget(per_second=100, per_endpoint=100, redis_url=budget_redis)

    first.take("GET /v1/customers")
    second.take("GET /v1/products")
    clock.advance(1)

    assert first.requests_per_second() == second.requests_per_second() == 2 / USAGE_WINDOW_SECONDS


def test_a_budget_whose_redis_cannot_be_reached_lets_nothing_through_unmetered():
    budget = RateBudget(per_second=100, per_endpoint=100, redis_url=UNREACHABLE)

    with pytest.raises(redis.RedisError):
        budget.acquire("POST /v1/refunds", max_wait=0)


def test_the_budget_follows_the_settings(settings):
    settings.STRIPE_RATE_LIMIT_PER_SECOND, settings.STRIPE_RATE_LIMIT_PER_ENDPOINT = 25.0, 5.0
    current = rate_budget()

    settings.STRIPE_RATE_LIMIT_PER_SECOND = 90.0

    assert rate_budget() is not current
    assert (rate_budget().per_second, rate_budget().per_endpoint) == (90.0, 5.0)
    assert rate_budget() is rate_budget()  # one per process and configuration
