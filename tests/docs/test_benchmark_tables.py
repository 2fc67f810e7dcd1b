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


def _report_in(tmp_path, monkeypatch, name: str, change) -> None:
    report = json.loads((benchmarks.REPORTS / f"{name}.json").read_text())
    change(report)
    (tmp_path / f"{name}.json").write_text(json.dumps(report))
    monkeypatch.setattr(benchmarks, "REPORTS", tmp_path)


def test_the_soak_table_says_what_the_checker_found_and_each_endpoints_times(tmp_path, monkeypatch):
    def one_mismatch(report):
        report["check"]["mismatches"] = [{"kind": "orders", "what": "paid here, open in Stripe"}]
        report["ok"] = False

    _report_in(tmp_path, monkeypatch, "soak", one_mismatch)

    table = benchmarks.soak_table()

    assert "; the checker found 1 mismatch (the run failed)." in table.splitlines()[0]
    endpoints = json.loads((tmp_path / "soak.json").read_text())["requests"]["by_endpoint"]
    for name, endpoint in endpoints.items():
        if not name.startswith("emulator"):
            assert f"| `{name}` | {endpoint['count']:,} | {endpoint['p50_ms']:g} | {endpoint['p99_ms']:g} |" in table


def test_the_mirror_table_gives_the_limits_used_as_percent(tmp_path, monkeypatch):
    def nearly_all(report):
        report["limit_used"]["POST /v1/products"] = {"median": 0.987, "min": 0.95, "max": 1.0}

    _report_in(tmp_path, monkeypatch, "mirror", nearly_all)

    assert "| per-endpoint limit used (`POST /v1/products`) | 99% (95-100) |" in benchmarks.mirror_table()


def test_the_dashboard_table_has_a_row_for_each_range_with_its_queries():
    report = json.loads((benchmarks.REPORTS / "dashboard.json").read_text())

    table = benchmarks.dashboard_table()

    for name, full in report["with_orders"].items():
        row = next(line for line in table.splitlines() if line.startswith(f"| {name.replace('_', ' ')} |"))
        assert row.endswith(f"| {full['queries']['median']:g} |") or f"| {full['queries']['median']:g} (" in row
