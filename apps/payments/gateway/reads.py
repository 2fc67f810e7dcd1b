"""Reads from Stripe made before an event's transaction, never inside it.

A drain applies each event in a transaction that holds row locks and a database connection. A read from
Stripe there (a wait for the rate budget, then the request) would hold them all for as long, and drains
would sleep instead of working. So while an event is applied (`answering`), a GET that has no answer yet
raises `ReadFirst`: the caller undoes the transaction, makes the read with nothing held (`Answers.read`),
and applies the event again, which now finds Stripe's answer where it asked. What the handler decides, it
decides under its locks, on state read after the answer came: the answer is checked against what is held
then, as the handlers check any event (watermarks, versions, final states).

Every request goes through `client.BudgetedHTTPClient`, ours and dj-stripe's, so no read escapes this.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from apps.payments.gateway.errors import StripeUnavailable

# How often one event may send its handler back for a read before it is tried again later.
MAX_READS_PER_EVENT = 12
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
ATTEMPTS = 3
BACKOFF_SECONDS = 0.25


class ReadFirst(Exception):
    """Raised inside `answering` for a read not made yet: undo the transaction, `Answers.read` it, run again."""

    def __init__(self, client, method: str, url: str, headers: dict):
        super().__init__(f"{method.upper()} {url} is read before the event's transaction")
        self.client, self.method, self.url, self.headers = client, method, url, headers


class ReadAgain(Exception):
    """Raised when what was read was overtaken by a store made since: forget the answers and read again."""


class Answers:
    """Stripe's answers for one event, and values noted before the first read (`remember`)."""

    def __init__(self) -> None:
        self.responses: dict[tuple[str, str], tuple[Any, int, Any]] = {}
        self.notes: dict[str, Any] = {}
        self.reads = 0

    def read(self, needed: ReadFirst) -> None:
        """Make the read `needed` asks for, outside any transaction; Stripe's busy answers are tried again a few
        times, then the event waits for a later attempt (`StripeUnavailable`)."""
        self.reads += 1
        if self.reads > MAX_READS_PER_EVENT:
            raise StripeUnavailable(f"the event needed more than {MAX_READS_PER_EVENT} reads from Stripe", 5)
        for attempt in range(ATTEMPTS):
            try:
                content, status, headers = needed.client.request(needed.method, needed.url, needed.headers)
            except Exception as error:  # the breaker, the budget, the network: the event is tried later
                if attempt == ATTEMPTS - 1:
                    raise StripeUnavailable(f"{needed}: {error}", 5) from error
            else:
                if status not in RETRY_STATUSES or attempt == ATTEMPTS - 1:
                    if status in RETRY_STATUSES:
                        raise StripeUnavailable(f"{needed}: Stripe answered {status} {ATTEMPTS} times", 5)
                    self.responses[(needed.method, needed.url)] = (content, status, headers)
                    return
            time.sleep(BACKOFF_SECONDS * 2**attempt)

    def forget(self) -> None:
        """What was read is older than what another process stored since: read it all again."""
        self.responses.clear()
        self.notes.clear()


_answers: ContextVar[Answers | None] = ContextVar("stripe_answers", default=None)


@contextmanager
def answering(answers: Answers) -> Iterator[Answers]:
    """Inside: reads from Stripe come from `answers`, or raise `ReadFirst`; writes are refused."""
    token = _answers.set(answers)
    try:
        yield answers
    finally:
        _answers.reset(token)


def applying_an_event() -> bool:
    return _answers.get() is not None


def answer(client, method: str, url: str, headers: dict) -> tuple[Any, int, Any] | None:
    """For the HTTP client: the answer to this request when it may not go out now, or None to send it."""
    answers = _answers.get()
    if answers is None:
        return None
    if method.lower() != "get":
        raise RuntimeError(f"{method.upper()} {url}: an event's handler must not write to Stripe")
    found = answers.responses.get((method, url))
    if found is None:
        raise ReadFirst(client, method, url, headers)
    return found


def remember(name: str, compute: Callable[[], Any]) -> Any:
    """`compute()`, noted the first time an event's handler asks and given back on its later runs (a version
    read before Stripe was, kept while Stripe is read); computed every time outside an event."""
    answers = _answers.get()
    if answers is None:
        return compute()
    if name not in answers.notes:
        answers.notes[name] = compute()
    return answers.notes[name]


def run(apply: Callable[[], Any], first_read: ReadFirst | None = None) -> Any:
    """`apply()` (its own transaction) with Stripe's answers, run again after each read it asks for, the read
    made in between with nothing held; `first_read`, one it is known to need, is made before it runs."""
    answers = Answers()
    if first_read is not None:
        answers.read(first_read)
    while True:
        try:
            with answering(answers):
                return apply()
        except ReadFirst as needed:
            answers.read(needed)
        except ReadAgain:
            answers.forget()
            answers.reads += 1
            if answers.reads > MAX_READS_PER_EVENT:
                raise StripeUnavailable("what the event read from Stripe kept being overtaken", 5) from None
