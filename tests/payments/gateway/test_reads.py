"""Reads from Stripe before an event's transaction (apps/payments/gateway/reads.py): inside `answering`, a GET
with no answer asks to be read first, a write is refused; `run` makes each read with nothing held and runs the
work again; a value noted before the first read is kept while Stripe is read; a read overtaken is read again;
Stripe's busy answers are tried a few times, then the event waits.

The client here is a stand-in that counts requests: this is the loop's logic. A handler whose read is made by
the drain through the real client and the emulator is in tests/payments/webhooks/test_processing.py."""

import pytest

from apps.payments.gateway import reads
from apps.payments.gateway.errors import StripeUnavailable


class Client:
    """Answers each GET with the next of `statuses` (then 200), its body naming how many reads came before."""

    def __init__(self, *statuses: int):
        self.statuses = list(statuses)
        self.requests: list[str] = []

    def request(self, method, url, headers, post_data=None):
        self.requests.append(url)
        status = self.statuses.pop(0) if self.statuses else 200
        return f"read {len(self.requests)}", status, {}


def _get(client: Client, url: str = "/v1/products/prod_1"):
    """What `BudgetedHTTPClient.request` does first: an answer read before, or a request to read it first."""
    return reads.answer(client, "get", url, {}) or client.request("get", url, {})


def test_outside_an_event_a_read_goes_out_at_once():
    client = Client()

    assert _get(client) == ("read 1", 200, {})
    assert not reads.applying_an_event()


def test_an_event_reads_before_its_work_and_finds_the_answer_when_run_again():
    client = Client()
    runs: list[str] = []

    def work():
        runs.append("run")
        return _get(client)[0]

    assert reads.run(work) == "read 1"
    assert runs == ["run", "run"]
    assert client.requests == ["/v1/products/prod_1"]


def test_a_write_inside_an_event_is_refused():
    with reads.answering(reads.Answers()), pytest.raises(RuntimeError, match="must not write to Stripe"):
        reads.answer(Client(), "post", "/v1/products", {})


def test_a_value_noted_before_the_read_is_the_one_the_work_sees_after_it():
    client, versions = Client(), iter([7, 8, 9])
    seen: list[int] = []

    def work():
        seen.append(reads.remember("version", lambda: next(versions)))
        _get(client)
        return seen[-1]

    assert reads.run(work) == 7
    assert seen == [7, 7]


def test_a_read_overtaken_by_a_store_is_read_again_with_a_fresh_note():
    client, versions = Client(), iter([1, 2, 3])
    stores_meanwhile = ["another drain's"]  # one store comes in between the first read and its use

    def work():
        noted = reads.remember("version", lambda: next(versions))
        body = _get(client)[0]
        if stores_meanwhile:
            stores_meanwhile.pop()
            raise reads.ReadAgain("stored meanwhile")
        return noted, body

    assert reads.run(work) == (2, "read 2")
    assert len(client.requests) == 2


def test_stripe_busy_is_tried_again_and_then_the_event_waits(monkeypatch):
    monkeypatch.setattr(reads, "BACKOFF_SECONDS", 0)
    assert reads.run(lambda: _get(Client(429, 500))[1]) == 200

    with pytest.raises(StripeUnavailable, match="answered 503 3 times"):
        reads.run(lambda: _get(Client(503, 503, 503)))


def test_a_not_found_is_an_answer_not_a_failure():
    assert reads.run(lambda: _get(Client(404))[1]) == 404


def test_an_event_that_keeps_asking_for_reads_waits_for_a_later_attempt():
    client = Client()
    urls = (f"/v1/products/prod_{n}" for n in range(100))

    with pytest.raises(StripeUnavailable, match="more than"):
        reads.run(lambda: [_get(client, next(urls)) for _ in range(100)])
