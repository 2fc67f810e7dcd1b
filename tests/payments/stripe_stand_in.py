"""An in-memory stand-in for Stripe behind the real gateway, for unit tests of the modules that call it.

`StripeStandIn.gateway` is a `StripeGateway` whose SDK client is replaced by a recorder: `call`,
`call_for_client` and `find_for_client` are the real ones (how an error is classified, what becomes
`StripeUnavailable`, `StripeRefused` or `StripeKeySpent`), while each `gw.v1.<resource>.<method>(...)` is
recorded and answered from what the test scripted. An answer is a dict (made an SDK object, as Stripe's JSON
is), a list of dicts (a list object), an exception (raised, as the SDK raises Stripe's errors), or a callable
given the call. A call nobody scripted fails the test.

The `stripe_stand_in` fixture (tests/payments/conftest.py) puts it behind `gateway()` for one test, and refuses
the SDK's module-level requests (dj-stripe's own) meanwhile: a test sees every request made.
"""

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import stripe

from apps.payments.gateway.client import StripeGateway
from apps.payments.gateway.policies import spend_call

API_KEY = "sk_test_standIn00000000000000000000"  # the shape dj-stripe accepts


@dataclass
class Call:
    """One request the code under test made: `path` is `checkout.sessions.retrieve`, and so on."""

    path: str
    args: tuple
    params: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str | None:
        return self.options.get("idempotency_key")


def sdk_object(values: dict) -> stripe.StripeObject:
    """A dict as the SDK hands back Stripe's JSON: nested objects (metadata included) are SDK objects too."""
    return stripe.StripeObject.construct_from(values, API_KEY)


def sdk_list(items: list[dict], *, has_more: bool = False) -> stripe.ListObject:
    """A list as Stripe answers it; `has_more` says another page follows (asked with `starting_after`)."""
    return stripe.ListObject.construct_from(
        {"object": "list", "data": items, "has_more": has_more, "url": "/v1/stand-in"}, API_KEY
    )


def missing(what: str = "object") -> stripe.InvalidRequestError:
    """Stripe's answer about an object it does not hold."""
    return stripe.InvalidRequestError(f"No such {what}", param="id", code="resource_missing", http_status=404)


def refused(message: str = "This request is not allowed", code: str | None = None) -> stripe.InvalidRequestError:
    """Stripe refusing a request for good (a 400 it would give again)."""
    return stripe.InvalidRequestError(message, param=None, code=code, http_status=400)


def unreachable() -> stripe.APIConnectionError:
    """No answer at all: the network failed, or Stripe did not answer in time."""
    return stripe.APIConnectionError("Could not connect to Stripe")


class ModuleLevelCallsRefused(stripe.HTTPClient):
    """The SDK's module-level API (dj-stripe's own requests): none may go out while the stand-in answers."""

    name = "stand-in"

    def request(self, method, url, headers, post_data=None):
        raise AssertionError(f"unexpected module-level Stripe call {method.upper()} {url}")

    def close(self) -> None:
        pass


class _Resource:
    def __init__(self, stand_in: "StripeStandIn", path: str):
        self._stand_in = stand_in
        self._path = path

    def __getattr__(self, name: str) -> "_Resource":
        if name.startswith("_"):
            raise AttributeError(name)
        return _Resource(self._stand_in, f"{self._path}.{name}" if self._path else name)

    def __call__(self, *args, params: dict | None = None, options: dict | None = None):
        return self._stand_in._answer(Call(self._path, args, dict(params or {}), dict(options or {})))


class StripeStandIn:
    def __init__(self):
        self.calls: list[Call] = []
        self._answers: dict[str, deque] = defaultdict(deque)
        self._always: dict[str, Any] = {}
        self.v1 = _Resource(self, "")
        gw = StripeGateway.__new__(StripeGateway)  # the real retry and error rules, no SDK client
        gw.v1 = self.v1
        self.gateway = gw

    def answer(self, path: str, *answers: Any) -> "StripeStandIn":
        """Answer the next calls to `path` with these, in turn; the last one keeps answering."""
        self._answers[path].extend(answers)
        return self

    def always(self, path: str, answer: Any) -> "StripeStandIn":
        """Answer every call to `path` with this from now on (a callable is given the call)."""
        self._answers.pop(path, None)
        self._always[path] = answer
        return self

    def standing_answer(self, path: str) -> Any:
        """What `always` set for `path`, for a test that wraps it (a race landing in the middle of a call)."""
        return self._always[path]

    def calls_to(self, path: str) -> list[Call]:
        return [call for call in self.calls if call.path == path]

    @property
    def paths(self) -> list[str]:
        return [call.path for call in self.calls]

    def _answer(self, call: Call):
        spend_call()  # as the real HTTP client does: a request beyond `calls_at_most` is refused, not sent
        self.calls.append(call)
        queued = self._answers.get(call.path)
        if queued:
            answer = queued.popleft() if len(queued) > 1 else queued[0]
        elif call.path in self._always:
            answer = self._always[call.path]
        else:
            raise AssertionError(f"unexpected Stripe call {call.path} {call.args} {call.params}")
        if callable(answer) and not isinstance(answer, type):
            answer = answer(call)
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, list):
            return sdk_list(answer)
        return sdk_object(answer) if isinstance(answer, dict) else answer
