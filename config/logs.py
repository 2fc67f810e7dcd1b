"""What every log line carries: the request id, the user, the Celery task and the last Stripe request.

`LOG_FORMAT=json` writes one JSON object per line (what a log pipeline reads); the default is `key=value`
for people. An exception's traceback stays inside its line (`traceback`), so a failed task is one line.
"""

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime

from django.core.signals import request_finished
from django.utils.functional import SimpleLazyObject, empty

from config import request_id as request_ids

_request: ContextVar = ContextVar("log_request", default=None)
_task_id: ContextVar[str | None] = ContextVar("log_task_id", default=None)
_stripe_request_id: ContextVar[str | None] = ContextVar("log_stripe_request_id", default=None)


def begin_request(request) -> None:
    _request.set(request)
    _stripe_request_id.set(None)


def begin_task(task_id: str | None) -> None:
    _task_id.set(task_id)
    _stripe_request_id.set(None)


def end_task() -> None:
    _task_id.set(None)
    _stripe_request_id.set(None)


def note_stripe_request(stripe_request_id: str | None) -> None:
    """The id Stripe gave its answer (`Request-Id`): what Stripe's support asks for."""
    if stripe_request_id:
        _stripe_request_id.set(stripe_request_id)


def _user_id(request) -> int | None:
    """The user of the current request if authentication already ran; never a query from inside logging."""
    user = vars(request).get("user") if request is not None else None
    if isinstance(user, SimpleLazyObject):
        user = None if user._wrapped is empty else user._wrapped
    return getattr(user, "pk", None)


class LogContextMiddleware:
    """Makes the request (and so, once authenticated, its user) what the log lines written for it name, up to
    Django's own `Not Found` line written after the middleware returned; `request_finished` ends it, so a line
    written later in the same thread names no one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        begin_request(request)
        return self.get_response(request)


def end_request(**kwargs) -> None:
    _request.set(None)
    _stripe_request_id.set(None)


request_finished.connect(end_request, dispatch_uid="config.logs.end_request")


class ContextFilter(logging.Filter):
    """Adds `request_id`, `user_id`, `task_id` and `stripe_request_id` to every record (`-` when none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_ids.current_request_id()
        record.user_id = _user_id(_request.get()) or "-"
        record.task_id = _task_id.get() or "-"
        record.stripe_request_id = _stripe_request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    FIELDS = ("request_id", "user_id", "task_id", "stripe_request_id")

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in self.FIELDS:
            value = getattr(record, field, "-")
            if value != "-":
                line[field] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


# Stripe's keys and signing secrets, and email addresses: never in an error report, wherever they hide in it.
_SECRETS = re.compile(r"\b(?:sk|rk)_(?:live|test)_\w+|\bwhsec_\w+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _scrubbed(value):
    if isinstance(value, str):
        return _SECRETS.sub("[scrubbed]", value)
    if isinstance(value, dict):
        return {key: _scrubbed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(item) for item in value]
    return value


def scrub_error_report(event: dict, hint: dict) -> dict:
    """Sentry's `before_send`: the report with every key, secret and address replaced."""
    return _scrubbed(event)
