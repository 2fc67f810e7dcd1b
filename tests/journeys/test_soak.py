"""Two minutes of `make soak`: the whole system under mixed load, Stripe faults and worker kills, then checked."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOAK = [sys.executable, "-m", "tools.soak", "--duration", "120s", "--database", "soak_test"]

pytestmark = pytest.mark.integration


def _soak(out: Path, timeout: float) -> int:
    """The soak in a session of its own; past `timeout` it is told to stop (and clean up), then killed."""
    process = subprocess.Popen(
        [*SOAK, "--redis-databases", "1,2,3", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(out / "soak.err", "wb"), start_new_session=True,  # noqa: SIM115
    )  # fmt: skip
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
        raise


def test_two_minutes_of_mixed_load_with_faults_and_kills_leave_nothing_wrong(tmp_path):
    returncode = _soak(tmp_path, timeout=1200)
    assert (tmp_path / "summary.json").exists(), (tmp_path / "soak.err").read_text()[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    requests, counts = summary["requests"], summary["check"]["counts"]

    assert summary["check"]["mismatches"] == [], f"logs in {tmp_path}"
    assert requests["server_errors_5xx"] == 0, requests["by_endpoint"]
    assert requests["unanswered"] == 0, requests["by_endpoint"]
    assert requests["unexpected"] == 0, (requests["task_errors"], requests["by_endpoint"])
    assert summary["settled"]["seconds"] is not None, summary["settled"]
    assert returncode == 0
    # The load and the faults were real: money moved both ways, workers died, Stripe failed, events repeated.
    assert counts["mail"]["receipts"] > 20
    assert counts["refunds"]["local"] > 0
    assert len(summary["kills"]) >= 2
    assert summary["faults_injected"]["429 before the work"] > 0
    assert counts["webhooks"]["deliveries"] > counts["webhooks"]["events"]
