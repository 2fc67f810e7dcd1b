"""The Stripe emulator as tests use it: a real process on a free port, steered over HTTP."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
TEST_API_KEY = "sk_test_emulatorTestKey0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmulatorProcess:
    def __init__(self, *extra_args: str, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = TEST_API_KEY
        self.args = extra_args
        self.process: subprocess.Popen | None = None
        self.http = requests.Session()

    def start(self) -> "EmulatorProcess":
        command = [sys.executable, "-m", "tools.stripe_emulator", "--port", str(self.port), "--log-level", "WARNING"]
        self.process = subprocess.Popen([*command, *self.args], cwd=ROOT, env={**os.environ})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the emulator exited with {self.process.returncode}")
            try:
                if requests.get(f"{self.url}/_emulator/health", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("the emulator did not start within 15 s")

    def stop(self) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            return self.process.wait(timeout=10)
        return self.process.returncode if self.process else 0

    # -- control API -------------------------------------------------------------------------------

    def control(self, verb: str, path: str, body: dict | None = None, **query) -> dict:
        response = self.http.request(verb, f"{self.url}/_emulator/{path}", json=body, params=query, timeout=30)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self.control("POST", "reset")

    def complete_checkout(self, session_id: str, outcome: str = "paid", **fields) -> dict:
        return self.control("POST", f"checkout/sessions/{session_id}/complete", {"outcome": outcome, **fields})

    def requests_seen(self, **filters) -> list[dict]:
        return self.control("GET", "requests", **filters)["data"]

    def add_fault(self, **spec) -> dict:
        return self.control("POST", "faults", spec)

    def wait_for_webhooks(self, timeout: float = 10) -> bool:
        return self.control("POST", "webhooks/wait", {"timeout": timeout})["idle"]
