"""A real Celery worker process for integration tests: the test database, Redis, the Stripe emulator."""

import os
import subprocess
import sys
import time
from pathlib import Path

from celery import Celery

from config.celery import app as celery_app
from tests.processes import child_pids, stop

ROOT = Path(__file__).resolve().parent.parent
# The workers this test process has started and not stopped: asked by name, they answer at once, where a question
# to every worker on the broker waits out its whole timeout for anyone else who might answer.
RUNNING: set[str] = set()


class WorkerProcess:
    def __init__(self, environment: dict[str, str], concurrency: int = 2, name: str = "test-worker", queues: str = ""):
        self.environment = environment
        self.concurrency = concurrency
        self.name = f"{name}-{os.getpid()}@localhost"
        self.queues = queues  # empty: every queue
        self.process: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--pool", "prefork", "--concurrency", str(self.concurrency),
            "--hostname", self.name, "--loglevel", "WARNING",
            "--without-heartbeat", "--without-mingle", "--without-gossip",
            *(["--queues", self.queues] if self.queues else []),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **self.environment})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited with {self.process.returncode}")
            if self._answers():
                if self.broker == celery_app.conf.broker_url:
                    RUNNING.add(self.name)
                return self
        raise RuntimeError("the Celery worker did not answer within 30 s")

    @property
    def broker(self) -> str:
        return self.environment.get("CELERY_BROKER_URL", celery_app.conf.broker_url)

    def _answers(self) -> bool:
        if self.broker == celery_app.conf.broker_url:
            return bool(celery_app.control.ping(destination=[self.name], timeout=0.5))
        # A worker on a broker of its own is asked there (Celery's `connection=` argument does not reach the
        # replies: they are awaited on this process's broker). Not made the current app: tasks sent by name
        # afterwards would go to that broker, where no worker of the other tests listens.
        with Celery("asking", broker=self.broker, set_as_current=False) as elsewhere:
            return bool(elsewhere.control.ping(destination=[self.name], timeout=0.5))

    def child_pids(self) -> list[int]:
        """The pool processes that run the tasks."""
        return child_pids(self.process)

    def stop(self) -> None:
        RUNNING.discard(self.name)
        stop(self.process)


class ProductionWorkers:
    """The workers as docker-compose.yml runs them: one for payments (webhooks, mirror, the rest), one for mail."""

    def __init__(self, environment: dict[str, str], label: str = ""):
        # `label` tells a second set apart from the session's: stopping one must not forget the other's names.
        self.payments = WorkerProcess(environment, name=f"{label}payments-worker", queues="webhooks,mirror,payments")
        self.mail = WorkerProcess(environment, name=f"{label}mail-worker", queues="mail")

    def start(self) -> "ProductionWorkers":
        self.payments.start()
        self.mail.start()
        return self

    def stop(self) -> None:
        self.payments.stop()
        self.mail.stop()
