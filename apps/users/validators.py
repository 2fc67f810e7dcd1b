"""An address is refused when the user gives it, not later when mail to it bounces."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

# Top-level domains that never receive mail from the internet (RFC 2606, RFC 6761, RFC 6762).
RESERVED_TOP_LEVEL_DOMAINS = frozenset({"example", "invalid", "local", "localhost", "test"})

UNDELIVERABLE = "We cannot send mail to this address: %(reason)s"


def validate_deliverable_email(value: str) -> None:
    """Django's syntax check (which already refuses quoted and non-ASCII local parts), plus
    what it lets through but mail cannot reach: `localhost`, IP literals, reserved domains.
    """
    validate_email(value)
    domain = value.rpartition("@")[2]
    if domain.startswith("["):
        _refuse("use a domain name, not an IP address.")
    labels = domain.rstrip(".").lower().split(".")
    if len(labels) < 2:
        _refuse("the domain needs a dot, as in example.com.")
    if labels[-1] in RESERVED_TOP_LEVEL_DOMAINS:
        _refuse(f".{labels[-1]} domains receive no mail.")


def _refuse(reason: str) -> None:
    raise ValidationError(UNDELIVERABLE, code="undeliverable", params={"reason": reason})
