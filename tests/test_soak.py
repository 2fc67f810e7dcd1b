"""Two minutes of `make soak`: the whole system under mixed load, Stripe faults and worker kills, then checked."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


def test_two_minutes_of_mixed_load_with_faults_and_kills_leave_nothing_wrong(tmp_path):
    command = [sys.executable, "-m", "tools.soak", "--duration", "120s", "--database", "soak_test"]
    run = subprocess.run([*command, "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert (tmp_path / "summary.json").exists(), run.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    where = f"logs in {tmp_path}"

    assert summary["check"]["mismatches"] == [], where
    assert summary["requests"]["server_errors_5xx"] == 0, summary["requests"]["by_endpoint"]
    assert summary["requests"]["unanswered"] == 0, summary["requests"]["by_endpoint"]
    assert summary["settled"]["seconds"] is not None, summary["settled"]
    assert run.returncode == 0, run.stderr[-3000:]
    # The load and the faults were real: money moved both ways, workers died, Stripe failed, events repeated.
    counts = summary["check"]["counts"]
    assert counts["orders"].get("paid", 0) + counts["orders"].get("partially_refunded", 0) > 20
    assert counts["refunds"]["local"] > 0
    assert len(summary["kills"]) >= 2
    assert summary["faults_injected"]["429"] > 0
    assert counts["webhooks"]["deliveries"] > counts["webhooks"]["events"]
    assert counts["mail"]["sent"] >= counts["orders"]["total"] // 2
