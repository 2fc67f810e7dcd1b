"""The benchmark figures in docs/scaling.md come from reports (tools/docs/benchmarks.py): what each table
says of where and when it was measured, and a clear error when a report is missing."""

import json

import pytest

from tools.docs import benchmarks


def test_a_missing_report_names_the_file_and_where_it_comes_from(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmarks, "REPORTS", tmp_path)

    with pytest.raises(benchmarks.MissingReport, match=r"webhooks\.json is missing: copy it from var/bench/"):
        benchmarks.webhooks_table()


def test_a_table_says_when_where_and_which_checks_failed(tmp_path, monkeypatch):
    report = json.loads((benchmarks.REPORTS / "scale.json").read_text())
    report["failed"] = ["workers_two_processes_scale"]
    report["environment"]["commit"] = "abc1234"
    (tmp_path / "scale.json").write_text(json.dumps(report))
    monkeypatch.setattr(benchmarks, "REPORTS", tmp_path)

    first_line = benchmarks.workers_table().splitlines()[0]

    assert "at commit `abc1234`" in first_line
    assert first_line.endswith("failed: workers_two_processes_scale.")
