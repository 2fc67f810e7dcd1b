"""The web application served by gunicorn in a process of its own, as production runs it, for a test that
must kill the process serving a request."""

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.emulator_process import free_port
from tests.processes import child_pids, stop

ROOT = Path(__file__).resolve().parent.parent


class WebProcess:
    def __init__(self, environment: dict[str, str]):
        self.environment = environment
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "WebProcess":
        command = [
            sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{self.port}",
            "--workers", "1", "--timeout", "60", "--log-level", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **self.environment})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                requests.get(f"{self.url}/health/live", timeout=5)
                return self
            except requests.RequestException:  # not listening yet, or still loading Django
                time.sleep(0.1)
        raise RuntimeError("gunicorn did not answer within 30 s")

    def worker_pids(self) -> list[int]:
        """The processes that serve requests (gunicorn's master only starts them)."""
        return child_pids(self.process)

    def stop(self) -> None:
        stop(self.process)
