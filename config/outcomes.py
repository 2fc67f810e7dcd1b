"""What an operation came to, as a type: a member of an outcome enum, with the ids and values it is about.

Services and webhook handlers answer with an `Outcome` rather than prose, so a caller (a test, the drain, a
command) branches on `outcome.kind`; the text an operator reads (an event's stored outcome) is derived from
it: each member's value is its text, with `{fields}` filled from the facts.

    class OrderOutcome(OutcomeKind):
        PAID = "order {order} paid"

    OrderOutcome.PAID.of(order=12)  # str() is "order 12 paid"
"""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class OutcomeKind(StrEnum):
    """An enum of what an operation can come to; each member's value is its text, with `{fields}`."""

    def of(self, **facts: Any) -> "Outcome":
        return Outcome(self, facts)


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    facts: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.kind.value.format(**self.facts)
