"""Every shell example of the docs that a newcomer follows runs, as written, against a stack started the way
`make run` starts it.

The `sh` blocks of the getting-started page, the API page and the subscriptions page run in order, in one bash
shell, as a reader pastes them into a terminal: the variables one block sets are there for the next. The stack
is `make run`'s (the Makefile's `run` target): `migrate`, `dev_admin`, then the Procfile's processes (gunicorn,
the Celery worker, beat) with its embedded defaults (SQLite, the file broker, mail in the log, development
settings) and the Stripe emulator delivering signed webhooks to the app. It runs on free ports, with a
database and a `var/` directory of its own (`DJANGO_VAR_DIR`), so it never touches the developer's `var/`, nor
the test PostgreSQL database. The examples' addresses (`127.0.0.1:8000`, `127.0.0.1:12111`) are rewritten to
those ports; nothing else in their text changes. `curl` fails on any error status, so an example that starts
answering 4xx or 5xx fails here.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.emulator_process import EmulatorProcess, free_port
from tests.processes import stop
from tools.docs.tables import settings_reads

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
PAGES = ("docs/getting-started.md", "docs/api.md", "docs/subscriptions.md")
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)
# Where the examples say the app and the emulator are: make run's ports.
APP_ADDRESSES = ("127.0.0.1:8000", "localhost:8000")
EMULATOR_ADDRESS = "127.0.0.1:12111"
WEBHOOK_SECRET = "whsec_docsExamplesTestSecret000000000000"
# The first migration of an empty SQLite database takes about a minute (dj-stripe's migrations); later steps
# take seconds. The empty database it makes is kept beside the test databases' (named, as they are, after the
# migrations) and copied for the next run, whose own `migrate` then finds nothing to do, as a second `make run` does.
MIGRATE_TIMEOUT = 600
MIGRATED_DATABASES = Path(tempfile.gettempdir()) / "commerce-make-run-databases"
EXAMPLES_TIMEOUT = 600


def _makefile_value(name: str) -> str:
    """A `NAME := value` of the Makefile: the emulator's keys make run gives the app."""
    match = re.search(rf"^{name} :?= (\S+)$", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    assert match, f"the Makefile no longer sets {name}"
    return match[1]


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def examples() -> list[tuple[str, str]]:
    """(where, text) of every `sh` block of the pages, in order."""
    found = []
    for page in PAGES:
        text = (ROOT / page).read_text()
        for match in SH_BLOCK.finditer(text):
            found.append((f"{page}:{text.count(chr(10), 0, match.start()) + 2}", match[1]))
    return found


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


class MakeRunStack:
    """The processes of `make run`, on free ports, in a directory of their own."""

    def __init__(self, home: Path):
        self.home = home
        self.var = home / "var"
        self.web_port = free_port()
        self.web = f"http://127.0.0.1:{self.web_port}"
        self.emulator = EmulatorProcess(
            "--webhook-url", f"{self.web}/stripe/webhook/",
            "--webhook-secret", WEBHOOK_SECRET,
            "--state-file", str(self.var / "stripe-emulator.json"),
        )  # fmt: skip
        self.processes: dict[str, subprocess.Popen] = {}
        # make run's embedded defaults: none of the variables the settings read comes from this test's own
        # environment (the test settings' PostgreSQL, Redis and broker), only what make run sets.
        read = {setting.name for setting in settings_reads()}
        self.environment = {name: value for name, value in os.environ.items() if name not in read}
        self.environment.update(
            DJANGO_SETTINGS_MODULE="config.settings.local",
            DJANGO_VAR_DIR=str(self.var),
            STRIPE_API_BASE=self.emulator.url,
            STRIPE_SECRET_KEY=_makefile_value("EMULATOR_SECRET_KEY"),
            STRIPE_PUBLISHABLE_KEY=_makefile_value("EMULATOR_PUBLISHABLE_KEY"),
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            PORT=str(self.web_port),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )

    def log(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def manage(self, *command: str, timeout: float) -> None:
        with self.log("manage").open("a") as log:
            subprocess.run(
                [sys.executable, "manage.py", *command],
                cwd=ROOT, env=self.environment, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=True,
            )  # fmt: skip

    def start(self) -> "MakeRunStack":
        self.var.mkdir()
        database = self.var / "db.sqlite3"
        migrated = MIGRATED_DATABASES / f"{settings.MIGRATIONS_FINGERPRINT}.sqlite3"
        if migrated.exists():
            shutil.copyfile(migrated, database)
        self.manage("migrate", "--no-input", timeout=MIGRATE_TIMEOUT)
        if not migrated.exists():
            MIGRATED_DATABASES.mkdir(exist_ok=True)
            partial = migrated.with_suffix(f".{os.getpid()}")
            shutil.copyfile(database, partial)
            partial.replace(migrated)  # whole or not at all, should two runs race
        self.manage("dev_admin", timeout=60)
        self.emulator.start()
        for name, command in _procfile().items():  # web, worker, beat: as honcho starts them
            with self.log(name).open("w") as log:
                self.processes[name] = subprocess.Popen(
                    ["bash", "-c", f"exec {command}"],
                    cwd=ROOT, env=self.environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
        self._wait_for("web", lambda: requests.get(f"{self.web}/health/live", timeout=2).ok)
        self._wait_for("worker", lambda: " ready." in self.log("worker").read_text(errors="replace"))
        return self

    def _wait_for(self, name: str, ready, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited with {self.processes[name].returncode}:\n{_tail(self.log(name))}")
            try:
                if ready():
                    return
            except requests.RequestException:  # not listening yet
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} was not ready within {timeout} s:\n{_tail(self.log(name))}")

    def stop(self) -> None:
        for process in self.processes.values():
            stop(process)
            # Whatever the master left behind (a worker's pool, gunicorn's workers): its own group, nothing else.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        self.emulator.stop()

    def logs(self) -> str:
        names = ["manage", *self.processes]
        return "\n".join(f"--- {name}.log ---\n{_tail(self.log(name))}" for name in names)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = MakeRunStack(tmp_path_factory.mktemp("make-run"))
    try:
        yield running.start()
    finally:
        running.stop()


def script(stack: MakeRunStack) -> str:
    """The examples as one bash script, at the stack's addresses, with curl failing on an error status."""
    lines = [
        "set -Eeuo pipefail",
        # An example whose request answers 4xx or 5xx fails the run, with the body and the example's place. One
        # that retries (`curl -sf --retry`: a 503 with Retry-After is answered by coming back) fails by its own -f.
        'curl() { case " $* " in *" --retry "*) ;; *) set -- --fail-with-body "$@";; esac; '
        'command curl --show-error --max-time 60 "$@"; }',
        "trap 'echo \"FAILED in the example at $EXAMPLE\" >&2' ERR",
    ]
    for where, text in examples():
        for address in APP_ADDRESSES:
            text = text.replace(address, f"{address.split(':')[0]}:{stack.web_port}")
        text = text.replace(EMULATOR_ADDRESS, f"127.0.0.1:{stack.emulator.port}")
        lines += [f"EXAMPLE={where}", f"echo '### {where}'", text]
    return "\n".join(lines) + "\n"


def test_every_shell_example_runs_against_make_run(stack):
    # The reader's terminal is beside `var/` (`cat var/dev-admin-password`): here, the stack's own directory.
    result = subprocess.run(
        ["bash", "-c", script(stack)],
        cwd=stack.home, env=stack.environment, capture_output=True, text=True, timeout=EXAMPLES_TIMEOUT, check=False,
    )  # fmt: skip
    transcript = f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}"

    assert result.returncode == 0, f"a docs example failed:\n{transcript}\n{stack.logs()}"
    # The try-it ends with the order paid, and the subscription's walk ends with the plan canceled.
    assert '"status":"paid"' in result.stdout, transcript
    assert "### docs/subscriptions.md" in result.stdout
