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


def test_the_webhook_table_counts_what_each_kind_of_event_costs():
    costs = json.loads((benchmarks.REPORTS / "webhooks.json").read_text())["cost_per_event"]

    table = benchmarks.webhooks_table()

    assert "checkout.session.completed" in costs
    for kind, cost in costs.items():
        assert f"| {kind} | {cost['ack_round_trips']:g} / {cost['ack_commits']:g} /" in table


def test_the_data_growth_table_shows_each_part_the_report_holds(tmp_path, monkeypatch):
    report = json.loads((benchmarks.REPORTS / "scale.json").read_text())
    report.pop("reconcile", None)  # a run with --parts that leave it out
    report["pages"] = {
        "sizes": [
            {
                "products": 1000,
                "orders": 10000,
                "pages": {"staff: all orders": {"p50_ms": 5, "p99_ms": 9, "queries": 3}},
            },
            {"products": 9, "orders": 10**6, "pages": {"staff: all orders": {"p50_ms": 6, "p99_ms": 11, "queries": 3}}},
        ]
    }
    (tmp_path / "scale.json").write_text(json.dumps(report))
    monkeypatch.setattr(benchmarks, "REPORTS", tmp_path)

    table = benchmarks.data_growth_table()

    assert "| staff: all orders: p50 / p99 (queries) | 5 / 9 ms (3) | 6 / 11 ms (3) |" in table
    assert "1,000,000 orders" in table
    assert "stripe_reconcile" not in table  # a part the run left out is not shown empty
