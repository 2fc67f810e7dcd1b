"""Every answer carries an `X-Request-ID`, and every log line written while serving it carries the same id.

A client quoting the id of a 503 leads an operator to the log lines that say what went wrong, while the
answer itself says nothing of Stripe's or the mirror's internals. A well-formed id set by the proxy in front
is kept behind a proxy, so its logs and ours agree; anything else is replaced by a fresh one.
"""

import re
import uuid
from contextvars import ContextVar

from django.conf import settings

HEADER = "X-Request-ID"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{8,128}")
_current: ContextVar[str] = ContextVar("request_id", default="-")


def current_request_id() -> str:
    return _current.get()


def begin(incoming: str | None) -> str:
    """Take the proxy's id (behind one, `DJANGO_BEHIND_PROXY`) when it is well formed, else a new one; it is
    current until the next `begin`. Without a proxy the header is the client's, and a client does not get to
    name its request after someone else's."""
    trusted = incoming if settings.BEHIND_PROXY else None
    request_id = trusted if trusted and _WELL_FORMED.fullmatch(trusted) else uuid.uuid4().hex
    _current.set(request_id)
    return request_id


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = begin(request.headers.get(HEADER))
        response = self.get_response(request)
        response[HEADER] = request.request_id
        return response
