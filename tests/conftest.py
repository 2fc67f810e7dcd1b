import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import stripe
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.commands import flush
from django.db import OperationalError
from django.db.backends.postgresql.operations import DatabaseOperations
from rest_framework.test import APIClient

from tests.emulator_process import EmulatorProcess
from tests.helpers import client_for, database_url
from tests.users.factories import UserFactory, operator
from tests.webhook_receiver import WebhookReceiver

STALE_DB_PREFIX = "test_commerce_"
ROOT = Path(__file__).resolve().parents[1]

# The real worker, the SMTP server and the fixtures built on them; the shop the payment journeys buy from.
pytest_plugins = ["tests.worker_fixtures", "tests.payments.fixtures"]


def _server() -> psycopg.Connection:
    """A connection to the PostgreSQL server the tests use, outside any test database."""
    db = settings.DATABASES["default"]
    params = {
        "dbname": "postgres",
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
    }
    return psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True)


def _drop_stale_test_databases() -> None:
    """Drop test databases built from older migrations (their name carries another fingerprint).

    A database still in use (another run at the same moment) refuses to drop; it is left alone.
    """
    current = settings.DATABASES["default"]["TEST"]["NAME"]
    with _server() as conn:
        names = [
            row[0]
            for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [STALE_DB_PREFIX + "%"])
        ]
        for name in names:
            if name.startswith(current):
                continue
            try:
                conn.execute(f'DROP DATABASE "{name}"')
            except psycopg.errors.ObjectInUse:
                continue


# A test that uses any of these runs a whole stack (the emulator, a live server, real workers, an SMTP server):
# it is an integration test whether or not its module says so, and `make check` leaves it out.
STACK_FIXTURES = frozenset({"stripe_emulator", "mirror_worker", "live_server", "smtp_sink"})
# `make test` runs pytest-xdist's work-stealing scheduler: each worker starts on an equal share of the
# tests in a row, and one that runs out takes half of what another still has waiting. The longest tests open the
# shares, so none is left to the end: the soak alone opens the first (its worker would hold the test after it
# for two minutes), the others are dealt to the heads of the rest. None needs the database as pytest-django's
# order leaves it: each starts from empty tables and leaves them empty.
SLOWEST_FIRST = (
    "tests/journeys/test_soak.py",  # two minutes of load, and its stack's start and checks
    "tests/docs/test_examples.py",  # make run's stack
    "tests/test_api_fuzz.py",  # half a minute for each kind of caller
    "tests/browser/",  # Chromium
    "tests/test_settings.py",  # production processes started and refused
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if STACK_FIXTURES.intersection(item.fixturenames):
            item.add_marker(pytest.mark.integration)


def _shares(total: int, workers: int) -> list[int]:
    """How many tests each worker starts with, as the work-stealing scheduler splits them."""
    sizes = []
    for worker in range(workers):
        sizes.append(total // (workers - worker))
        total -= sizes[-1]
    return sizes


def dealt(longest: list, rest: list, workers: int) -> list:
    """`longest` (longest first) at the heads of the workers' shares, the first one alone on the first share if
    there are other workers, and `rest` in its order after them."""
    if workers < 2 or not longest:
        return longest + rest
    heads = [[longest[0]]] + [longest[1 + worker :: workers - 1] for worker in range(workers - 1)]
    ordered, remaining = [], iter(rest)
    for head, size in zip(heads, _shares(len(longest) + len(rest), workers), strict=True):
        ordered += head + [item for _, item in zip(range(size - len(head)), remaining, strict=False)]
    return ordered + list(remaining)


class SlowestFirst:
    @pytest.hookimpl(trylast=True)  # after pytest-django has ordered the tests by how they use the database
    def pytest_collection_modifyitems(self, config, items) -> None:
        def rank(item) -> int:
            return next((n for n, path in enumerate(SLOWEST_FIRST) if item.nodeid.startswith(path)), len(SLOWEST_FIRST))

        longest = sorted((item for item in items if rank(item) < len(SLOWEST_FIRST)), key=rank)
        rest = [item for item in items if rank(item) == len(SLOWEST_FIRST)]
        workers = getattr(config, "workerinput", {}).get("workercount", 1)
        items[:] = dealt(longest, rest, workers)


def pytest_configure(config) -> None:
    config.pluginmanager.register(SlowestFirst(), "slowest-first")


def _copy_a_migrated_database_for_each_worker(workers: int) -> None:
    """On a machine without this run's test databases, migrate one and copy it for each pytest-xdist worker
    (`CREATE DATABASE ... TEMPLATE`, seconds), rather than have every worker run the same minute of
    migrations at once on the same cores. Databases already there are kept, as `--reuse-db` keeps them."""
    base = settings.DATABASES["default"]["TEST"]["NAME"]
    wanted = [f"{base}_gw{index}" for index in range(workers)]  # pytest-django's names for the workers' databases
    with _server() as conn:
        existing = {
            row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [base + "%"])
        }
        missing = [name for name in wanted if name not in existing]
        if not missing:
            return
        if base not in existing:
            conn.execute(f'CREATE DATABASE "{base}"')
        # In a process of its own: this one's Django stays pointed at no test database, as pytest-django expects.
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url(base),
            "PYTEST_XDIST_WORKER": "gw0",
        }
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "--verbosity", "0"],
            cwd=ROOT,
            env=environment,
            check=True,
        )
        for name in missing:
            try:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{base}"')
            except psycopg.errors.ObjectInUse:
                return  # another run has the template open: each worker then migrates a database of its own


def pytest_sessionstart(session) -> None:
    config = session.config
    if hasattr(config, "workerinput"):
        return  # once, in the process that starts the xdist workers, not once per worker
    _drop_stale_test_databases()
    workers = getattr(config.option, "numprocesses", None) or 0
    if workers and not config.option.create_db:
        _copy_a_migrated_database_for_each_worker(workers)


FLUSH_ATTEMPTS = 5


# What migrations make and no test changes: content types and permissions stay, so nothing needs making again
# after each flush (Django's post_migrate signal, a tenth of a second each time).
KEPT_BY_FLUSH = frozenset({"django_content_type", "auth_permission"})


@pytest.fixture(scope="session", autouse=True)
def _flush_by_delete_and_outlast_a_deadlock():
    """How a test that commits is emptied afterwards (pytest-django's flush), changed three times.

    DELETE instead of TRUNCATE, in one statement: the tables hold a few rows each, and emptying 90 of them by DELETE
    takes a tenth of the time TRUNCATE takes to give each a new file. Django makes its foreign keys deferrable, so
    the rows go in any order within one transaction.

    Content types and permissions are kept, and not made again (`KEPT_BY_FLUSH`).

    Run again after a deadlock: a worker or the live server may still finish a write it began (a task the broker
    delivered after the test, a webhook the emulator sent late), and PostgreSQL breaks a deadlock by failing one
    side, at times the flush; the next test would meet the rows this one made."""
    original_sql_flush = DatabaseOperations.sql_flush
    original_execute = DatabaseOperations.execute_sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or not tables:
            return original_sql_flush(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        emptied = sorted(set(tables) - KEPT_BY_FLUSH)
        return [" ".join(f"DELETE FROM {self.quote_name(table)};" for table in emptied)]  # noqa: S608 - Django's own

    def execute_sql_flush(self, sql_list):
        for attempt in range(1, FLUSH_ATTEMPTS + 1):
            try:
                original_execute(self, sql_list)
                return
            except OperationalError as error:
                if not isinstance(error.__cause__, psycopg.errors.DeadlockDetected) or attempt == FLUSH_ATTEMPTS:
                    raise

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush)
        patch.setattr(DatabaseOperations, "execute_sql_flush", execute_sql_flush)
        patch.setattr(flush, "emit_post_migrate_signal", lambda *args, **kwargs: None)
        yield


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker, _flush_by_delete_and_outlast_a_deadlock):
    """The test database `--reuse-db` kept, emptied once before the first test.

    A test that commits is emptied after it ends; a run stopped during one (Ctrl-C, a killed CI run) leaves its
    rows behind, and the next run on this machine would meet them in tests that expect an empty shop. No migration
    makes rows other than those the flush keeps, so an empty database is what a fresh one holds."""
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0, reset_sequences=False)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters live in the cache; each test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def staff_user(db):
    return operator()


@pytest.fixture
def user_client(user) -> APIClient:
    return client_for(user)


@pytest.fixture
def staff_client(staff_user) -> APIClient:
    return client_for(staff_user)


# --- the Stripe emulator, a real process over HTTP -------------------------------------------------


@pytest.fixture(scope="session")
def stripe_emulator():
    process = EmulatorProcess().start()
    yield process
    process.stop()


@pytest.fixture
def emulator(stripe_emulator):
    """The emulator, emptied: no objects, faults, limits or webhook endpoints left by another test."""
    stripe_emulator.reset()
    yield stripe_emulator
    # Again before this test's tables are emptied, waiting for the webhooks being sent: none lands in the next
    # test's database.
    stripe_emulator.reset()


@pytest.fixture
def stripe_client(emulator):
    return stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url}, max_network_retries=0)


@pytest.fixture
def webhook_receiver():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
