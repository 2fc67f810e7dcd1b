"""What a resource handler receives (`Call`) and how handlers are matched to paths (`Router`)."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from . import includable
from .listing import expand
from .params import string_list
from .store import Store


@dataclass
class Call:
    store: Store
    method: str
    path: str
    params: dict
    args: dict = field(default_factory=dict)
    request_id: str = ""
    idempotency_key: str | None = None
    public_url: str = ""
    # Called with a publishable key (as Stripe.js and the mobile SDKs do): the handler checks the client secret.
    publishable: bool = False

    def emit(self, event_type: str, obj: dict, previous: dict | None = None) -> dict:
        """An event caused by this API request (its `request` names it, as Stripe's do)."""
        return self.store.emit(
            event_type, obj, previous=previous, request={"id": self.request_id, "idempotency_key": self.idempotency_key}
        )

    def apply_changes(self, obj: dict, changes: dict, event_type: str) -> dict:
        """Set what differs and emit the update event with `previous_attributes`; an unchanged update emits nothing."""
        previous = {key: obj[key] for key, value in changes.items() if obj[key] != value}
        if previous:
            obj.update(changes)
            self.emit(event_type, obj, previous)
        return previous

    def expanded(self, obj: dict) -> dict:
        return expand(obj, string_list(self.params, "expand"), self.store.find, includable.resolver(self.store))


Handler = Callable[[Call], dict]


class Router:
    def __init__(self):
        self.routes: list[tuple[str, re.Pattern, str, Handler]] = []
        # "METHOD pattern" of the endpoints a publishable key may call (with a client secret).
        self.publishable: set[str] = set()

    def add(self, method: str, pattern: str, *, publishable: bool = False):
        """Register a handler; `{name}` in the pattern captures one path segment."""
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")
        if publishable:
            self.publishable.add(f"{method} {pattern}")

        def register(handler: Handler) -> Handler:
            self.routes.append((method, regex, pattern, handler))
            return handler

        return register

    def extend(self, other: "Router") -> None:
        self.routes.extend(other.routes)
        self.publishable |= other.publishable

    def match(self, method: str, path: str) -> tuple[Handler, dict, str] | None:
        for route_method, regex, pattern, handler in self.routes:
            if route_method == method:
                found = regex.match(path)
                if found:
                    return handler, found.groupdict(), pattern
        return None

    def knows_path(self, path: str) -> bool:
        return any(regex.match(path) for _, regex, _, _ in self.routes)
