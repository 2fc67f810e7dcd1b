"""A real PgBouncer in transaction mode in front of the test database, for tests whose processes must connect
through it as a deployment's do once they outnumber PostgreSQL's connections."""

import getpass
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from django.db import connection

from tests.emulator_process import free_port

# Fewer connections to PostgreSQL than the processes using them: every transaction may land on a connection
# another process used a moment before, so whatever a session kept would show.
SERVER_CONNECTIONS = 2


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise RuntimeError(
            "PgBouncer is not installed: `make test` installs it (Debian's pgbouncer package); "
            "'sudo apt install pgbouncer' or 'brew install pgbouncer' (docs/scaling.md)"
        )
    return found


class PgBouncer:
    """PgBouncer on a free port, pooling per transaction, forwarding every database to the test run's server."""

    def __init__(self):
        self.port = free_port()
        self.user = connection.settings_dict["USER"] or getpass.getuser()
        self.directory = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.process: subprocess.Popen | None = None

    def url(self, database: str) -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{database}"

    def _write_config(self) -> Path:
        db = connection.settings_dict
        server = f"host={db['HOST'] or '/var/run/postgresql'} port={db['PORT'] or 5432}"
        if db["USER"]:
            server += f" user={db['USER']}"
        if db["PASSWORD"]:
            server += f" password={db['PASSWORD']}"
        (self.directory / "users.txt").write_text(f'"{self.user}" ""\n')
        config = self.directory / "pgbouncer.ini"
        config.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = {server}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {self.directory / 'users.txt'}",
                    f"admin_users = {self.user}",
                    "pool_mode = transaction",
                    f"default_pool_size = {SERVER_CONNECTIONS}",
                    "max_client_conn = 200",
                    "",
                ]
            )
        )
        return config

    def start(self) -> "PgBouncer":
        config = self._write_config()
        command = [pgbouncer_binary(), str(config)]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root; it drops to PostgreSQL's own user
            for path in (self.directory, *self.directory.iterdir()):
                shutil.chown(path, "postgres")
            command.insert(1, "--user=postgres")
        with open(self.directory / "pgbouncer.log", "w") as log:  # it logs to stderr when it has no logfile
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"PgBouncer exited: {self.log()}")
            try:
                self.admin("SHOW VERSION")
                return self
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError(f"PgBouncer did not answer within 15 s: {self.log()}")

    def admin(self, command: str) -> list[dict]:
        """A command of PgBouncer's own console (`SHOW POOLS`, `SHOW STATS`, ...), its rows as dicts."""
        with psycopg.connect(self.url("pgbouncer"), autocommit=True, prepare_threshold=None) as console:
            cursor = console.execute(command)
            names = [column.name for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
