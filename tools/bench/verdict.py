"""What every benchmark prints beside its figures: where it ran, what it checked, and an exit status that says so.

A benchmark builds its report, names the checks that must hold (a target met, nothing lost or duplicated,
every answer the expected one) and ends with `return finish(report, checks)`: the JSON gets `environment`,
`checks` and `failed`, and the exit status is 1 when any check failed. The report is also left in
`var/bench/<benchmark>.json`.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The PostgreSQL settings that move these numbers: durability of a commit, how dead rows are cleaned, memory.
POSTGRES_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "commit_delay",
    "wal_level",
    "max_wal_size",
    "shared_buffers",
    "autovacuum",
    "max_connections",
)
PACKAGES = ("django", "psycopg", "celery", "redis", "dj-stripe", "gunicorn", "stripe")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{commit}+changes" if git("status", "--porcelain", "--untracked-files=no") else commit


def _postgres(database_url: str) -> dict[str, str]:
    import psycopg

    try:
        with psycopg.connect(database_url) as connection:  # libpq reads postgres:/// URLs as they are
            rows = connection.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
                [list(POSTGRES_SETTINGS)],
            ).fetchall()
    except psycopg.Error as error:
        return {"error": type(error).__name__}
    return dict(sorted(rows))


def environment(database_url: str | None = None) -> dict:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    found = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "commit": _commit(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "packages": versions,
    }
    if database_url:
        found["postgresql"] = _postgres(database_url)
    return found


def spread(values: list[float]) -> dict:
    """A figure over the rounds of a run: its median, min and max."""
    return {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values)}


def spread_each(rounds: list[dict]) -> dict:
    """Each figure of the rounds' results (dicts with the same keys) as its spread."""
    return {name: spread([one[name] for one in rounds]) for name in rounds[0]}


# Where each run leaves its report, as `<benchmark>.json`: the docs' figures are written from copies of these
# kept in docs/benchmarks/ (`python -m tools.docs.tables`), never typed by hand.
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR", ROOT / "var" / "bench"))


def finish(report: dict, checks: dict[str, bool], database_url: str | None = None) -> int:
    """Print the report with its environment and checks, and leave it in `RESULTS`; 1 when a check failed."""
    failed = sorted(name for name, held in checks.items() if not held)
    report = {**report, "environment": environment(database_url), "checks": checks, "failed": failed}
    text = json.dumps(report, indent=2)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{report.get('benchmark', 'benchmark')}.json").write_text(text + "\n")
    if failed:
        print(f"{report.get('benchmark', 'benchmark')}: failed {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
