"""With `SENTRY_DSN`, an unhandled error reaches Sentry (here a loopback server in Sentry's place), with no
secret and no personal data in it."""

import gzip
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import brotli
from django.conf import settings

SCRIPT = """
import django, sentry_sdk
django.setup()
from django.test import Client
body = {"email": "ada@example.com", "password": "hunter2-passphrase"}
answer = Client(raise_request_exception=False).post("/fail/", body, HTTP_AUTHORIZATION="Bearer secret-bearer-token")
assert answer.status_code == 500, answer.status_code
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
    assert "RuntimeError" in sent
    assert "the failure Sentry must hear of (1 header, customer [scrubbed])" in sent
    assert "sk_test_mustNeverLeaveTheMachine0000" not in sent
    assert "secret-bearer-token" not in sent
    assert "ada@example.com" not in sent  # neither the message, the body nor the frame's locals
    assert "hunter2-passphrase" not in sent
    assert settings.SECRET_KEY not in sent
