"""With `SENTRY_DSN`, an unhandled error in a request or a Celery task reaches Sentry (here a loopback server in
Sentry's place), with no secret and no personal data in it; with `SENTRY_TRACES_SAMPLE_RATE`, a task's trace too."""

import gzip
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import brotli
import pytest
from django.conf import settings

# The project is started in a fresh interpreter, beside a Sentry stand-in.
pytestmark = pytest.mark.integration

SCRIPT = """
import django, sentry_sdk
django.setup()
from django.test import Client
body = {"email": "ada@example.com", "password": "hunter2-passphrase"}
answer = Client(raise_request_exception=False).post("/fail/", body, HTTP_AUTHORIZATION="Bearer secret-bearer-token")
assert answer.status_code == 500, answer.status_code
from config.celery import app  # noqa: F401 - the worker's application, with its signals
from apps.payments.mirror.tasks import mirror_sync_task
assert mirror_sync_task.apply(args=["not-a-record-id"]).failed()  # a message the task cannot make sense of
sentry_sdk.flush(timeout=5)
"""


class _SentryInbox(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "br":  # what sentry-sdk sends when brotli is installed (Locust brings it)
            body = brotli.decompress(body)
        self.received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def _items(envelopes: list[bytes]) -> list[tuple[dict, dict]]:
    """Each envelope's items (Sentry's format: a header line, then a header and a payload line per item)."""
    items = []
    for envelope in envelopes:
        lines = envelope.decode().splitlines()[1:]
        items += [
            (json.loads(header), json.loads(payload)) for header, payload in zip(lines[::2], lines[1::2], strict=True)
        ]
    return items


def test_an_unhandled_error_reaches_sentry_without_secrets():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SentryInbox)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _SentryInbox.received = []
    try:
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            cwd=settings.BASE_DIR,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "config.settings.test",
                "DJANGO_ROOT_URLCONF": "tests.operations.failing_urls",
                "SENTRY_DSN": f"http://publickey@127.0.0.1:{server.server_port}/42",
                "STRIPE_SECRET_KEY": "sk_test_mustNeverLeaveTheMachine0000",
                "SENTRY_TRACES_SAMPLE_RATE": "1",
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.shutdown()

    assert result.returncode == 0, result.stderr
    sent = b"".join(_SentryInbox.received).decode()
    items = _items(_SentryInbox.received)
    errors = {
        payload["exception"]["values"][-1]["type"]: payload["exception"]["values"][-1] | {"in": payload["transaction"]}
        for header, payload in items
        if header["type"] == "event"
    }
    traced = {payload["transaction"] for header, payload in items if header["type"] == "transaction"}
    assert errors.keys() == {"RuntimeError", "ValueError"}
    assert errors["RuntimeError"]["mechanism"]["type"] == "django"
    # The task's error, named after the task, as the Celery integration reports it.
    assert errors["ValueError"]["in"] == "apps.payments.tasks.mirror_sync_task"
    assert errors["ValueError"]["mechanism"]["type"] == "celery"
    assert "not-a-record-id" in errors["ValueError"]["value"]
    assert "apps.payments.tasks.mirror_sync_task" in traced  # the task's trace, sampled at SENTRY_TRACES_SAMPLE_RATE
    assert "the failure Sentry must hear of (1 header, customer [scrubbed])" in sent
    assert "sk_test_mustNeverLeaveTheMachine0000" not in sent
    assert "secret-bearer-token" not in sent
    assert "ada@example.com" not in sent  # neither the message, the body nor the frame's locals
    assert "hunter2-passphrase" not in sent
    assert settings.SECRET_KEY not in sent
