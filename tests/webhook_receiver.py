"""A real HTTP endpoint for webhook deliveries in tests: records what arrives, can refuse on purpose."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    def __init__(self):
        self.received: list[dict] = []
        self.fail_next = 0  # answer 500 to this many deliveries first
        self.answer_after = 0.0  # seconds each delivery waits for its answer
        self.answered = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    failing = receiver.fail_next > 0
                    receiver.fail_next -= int(failing)
                    receiver.received.append(
                        {"body": body, "signature": self.headers.get("Stripe-Signature"), "refused": failing}
                    )
                time.sleep(receiver.answer_after)
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver._lock:
                    receiver.answered += 1

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stripe/webhook/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self) -> list[dict]:
        with self._lock:
            return [json.loads(item["body"]) for item in self.received if not item["refused"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
