"""The order and payment lists count up to a bound (config/bounded_count.py): a page costs the same over a
million orders as over ten. Here with a bound of five, so a handful of rows crosses it."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config import bounded_count
from tests.helpers import client_for
from tests.payments.factories import OrderFactory, PaymentFactory
from tests.users.factories import operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def bound_of_five(monkeypatch):
    monkeypatch.setattr(bounded_count.BoundedCountPaginator, "limit", 5)


@pytest.fixture
def staff():
    return client_for(operator())


def test_under_the_bound_the_count_is_exact(staff, bound_of_five):
    OrderFactory.create_batch(4)

    answer = staff.get("/api/v1/orders", {"page_size": 2}).json()

    assert (answer["count"], answer["count_exact"], len(answer["results"])) == (4, True, 2)
    assert answer["next"].endswith("page=2&page_size=2")


def test_past_the_bound_the_count_says_at_least_and_stops_reading(staff, bound_of_five):
    OrderFactory.create_batch(8)

    with CaptureQueriesContext(connection) as queries:
        answer = staff.get("/api/v1/orders", {"page_size": 2}).json()

    assert (answer["count"], answer["count_exact"]) == (5, False)
    counting = [query["sql"] for query in queries.captured_queries if "COUNT(" in query["sql"].upper()]
    assert len(counting) == 1
    assert "LIMIT 6" in counting[0]  # it stops one row past the bound


def test_pages_reach_the_bound_and_a_deeper_page_is_a_clear_400(staff, bound_of_five):
    orders = OrderFactory.create_batch(8)

    last = staff.get("/api/v1/orders", {"page_size": 2, "page": "last"})
    deeper = staff.get("/api/v1/orders", {"page_size": 2, "page": 4})
    older = staff.get("/api/v1/orders", {"page_size": 2, "page": 2, "date_to": "2000-01-01"})

    assert staff.get("/api/v1/orders", {"page_size": 2, "page": 0}).status_code == 404  # not "too deep"
    assert last.status_code == 200
    assert last.json()["previous"].endswith("page=2&page_size=2")
    assert deeper.status_code == 400
    assert "rows deep: narrow this one (date_to" in deeper.json()["page"][0]
    assert older.status_code == 404  # narrowed to nothing: an empty list has no second page
    newest_first = [order["id"] for order in staff.get("/api/v1/orders", {"page_size": 5}).json()["results"]]
    assert newest_first == sorted((order.pk for order in orders), reverse=True)[:5]


def test_a_page_past_an_exact_count_is_still_a_404(staff, bound_of_five):
    OrderFactory.create_batch(3)

    assert staff.get("/api/v1/orders", {"page_size": 2, "page": 3}).status_code == 404


def test_payments_are_counted_the_same_way(staff, bound_of_five):
    PaymentFactory.create_batch(6)

    answer = staff.get("/api/v1/payments", {"page_size": 10}).json()

    assert (answer["count"], answer["count_exact"], len(answer["results"])) == (5, False, 5)  # as deep as counted
