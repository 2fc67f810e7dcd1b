"""The docs' benchmark figures, written from the reports kept in docs/benchmarks/, never typed by hand.

Each report is what a `make bench-...` run left in `var/bench/<benchmark>.json`, copied into docs/benchmarks/
at the commit it names; `python -m tools.docs.tables` writes the tables from them (`TABLES` there).
"""

import json
from pathlib import Path

REPORTS = Path(__file__).resolve().parent.parent.parent / "docs" / "benchmarks"


class MissingReport(Exception):
    """No report to write a table from."""


def report(benchmark: str) -> dict:
    path = REPORTS / f"{benchmark}.json"
    if not path.exists():
        raise MissingReport(f"{path.relative_to(REPORTS.parent.parent)} is missing: copy it from var/bench/")
    return json.loads(path.read_text())


def where_it_ran(found: dict) -> str:
    """One line: when, at which commit, on what, and whether every check held."""
    environment = found["environment"]
    postgresql = environment.get("postgresql", {})
    checks = "every check held" if not found["failed"] else f"failed: {', '.join(found['failed'])}"
    database = ""
    if postgresql:
        database = (
            f", PostgreSQL {postgresql.get('server_version', '?')} (synchronous_commit "
            f"{postgresql.get('synchronous_commit', '?')}, autovacuum {postgresql.get('autovacuum', '?')})"
        )
    return (
        f"Measured {environment['date']} at commit `{environment['commit']}` on {environment['cpus']} cores "
        f"({environment['cpu_model']}){database}; {checks}."
    )


def _spread(values: dict, unit: str = "") -> str:
    """A median with its range over the rounds: `48.0 ms (41.2-55.3)`."""
    if values["min"] == values["max"]:
        return f"{values['median']:g}{unit}"
    return f"{values['median']:g}{unit} ({values['min']:g}-{values['max']:g})"


def webhooks_table() -> str:
    found = report("webhooks")
    setup = found["setup"]
    rows = [
        where_it_ran(found),
        "",
        f"Web: `{setup['web']}`; worker: `{setup['worker']}` (cpu_shares {setup['worker_cpu_shares']}, nice "
        f"{setup['worker_nice_for_those_shares']} here), the default drains. Events: {setup['event_mix']}. "
        f"Sustained capacity {_spread(found['capacity_acks_per_second'], '/s')}; {setup['events_per_rate']:,} "
        f"events at each rate, medians of {setup['rounds']} rounds (range in brackets).",
        "",
        "| arrivals | a second | ack p50 | ack p99 | processed a second | lag p50 | lag p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for share, rate in found["ours"].items():
        rows.append(
            f"| {share} of capacity | {_spread(rate['arrivals_per_second'])} | "
            f"{_spread(rate['ack_latency_p50_ms'], ' ms')} | {_spread(rate['ack_latency_p99_ms'], ' ms')} | "
            f"{_spread(rate['processed_per_second'])} | {_spread(rate['lag_p50_ms'], ' ms')} | "
            f"{_spread(rate['lag_p99_ms'], ' ms')} |"
        )
    stock = found["djstripe_stock_view"]
    ratio = found["p99_ratio_stock_over_ours_at_80%_of_the_stock_views_capacity"]
    rows += [
        "",
        f"dj-stripe's stock view: capacity {_spread(stock['capacity_acks_per_second'], '/s')}; at 80% of it, ack "
        f"p99 {_spread(stock['ack_latency_p99_ms_at_80%_of_its_capacity'], ' ms')} against ours "
        f"{_spread(stock['ours_ack_latency_p99_ms_at_that_rate'], ' ms')} at the same rate: "
        f"x{_spread(ratio)}.",
    ]
    costs = found.get("cost_per_event")
    if costs:
        rows += [
            "",
            "What one event costs, counted (not timed: these do not depend on the machine), its acknowledgement "
            "and its share of a processing batch:",
            "",
            "| event | ack: round trips / commits / Redis | processing: round trips / commits / Redis / Stripe calls |",
            "|---|---|---|",
        ]
        for kind, cost in costs.items():
            rows.append(
                f"| {kind} | {cost['ack_round_trips']:g} / {cost['ack_commits']:g} / {cost['ack_redis_round_trips']:g}"
                f" | {cost['processing_round_trips']:g} / {cost['processing_commits']:g} / "
                f"{cost['processing_redis_round_trips']:g} / {cost['processing_stripe_calls']:g} |"
            )
    return "\n".join(rows)


def workers_table() -> str:
    found = report("scale")
    workers = found["workers"]
    rows = [
        where_it_ran(found),
        "",
        f"{workers['events_per_level']:,} events at each level, "
        + (
            f"{workers['webhook_drainers']} drains at once (the shipped `WEBHOOK_DRAINERS`), "
            if "webhook_drainers" in workers
            else ""
        )
        + "fresh work of one kind "
        f"(same work at every level: {'yes' if workers['same_work_at_every_level'] else 'no'}); medians of the "
        "rounds (range in brackets). CPU counts every process that does the work: the workers, PostgreSQL, "
        "Redis and the emulator.",
        "",
        "| worker processes | events a second | CPU per event | machine busy |",
        "|---|---|---|---|",
    ]
    for count, level in workers["levels"].items():
        spread = level["spread"]
        rows.append(
            f"| {count} | {_spread(spread['events_per_second'])} | {_spread(spread['cpu_ms_per_event'], ' ms')} | "
            f"{_spread({key: round(value * 100) for key, value in spread['machine_busy_share'].items()}, '%')} |"
        )
    budget = workers["shared_budget"]
    rows += [
        "",
        f"2 over 1: x{workers['ratio_2_over_1']}; 4 over 2: x{workers['ratio_4_over_2']}; CPU per event at 2 over "
        f"1: x{workers['cpu_per_event_2_over_1']}. Four processes sharing a budget of "
        f"{budget['budget_per_second']} reads a second made {budget['stripe_reads']} reads at "
        f"{budget['reads_per_second_on_average']}/s, never more than {budget['most_reads_in_any_one_second']} in "
        f"one second ({budget['allowed_in_one_second_with_the_burst']} allowed with the burst), "
        f"{budget['rate_limited_429']} answered 429.",
    ]
    return "\n".join(rows)


def data_growth_table() -> str:
    """bench-scale's history, pages and reconcile parts: each cost at a small size and at a large one."""
    found = report("scale")
    rows = [where_it_ran(found), "", "| what | small | large |", "|---|---|---|"]
    history = found.get("webhooks")
    if history:
        first, *_, last = history["levels"]
        for label, metric in (
            (
                "webhook ack p50 / p99",
                lambda level: f"{level['ack_latency_p50_ms']:g} / {level['ack_latency_p99_ms']:g} ms",
            ),
            ("events processed a second", lambda level: f"{level['processed_per_second']:g}"),
        ):
            rows.append(
                f"| {label} ({history['events_per_level']:,} events, {history['clients']} clients) | "
                f"{first['events_stored_before']:,} stored: {metric(first)} | "
                f"{last['events_stored_before']:,} stored: {metric(last)} |"
            )
    pages = found.get("pages")
    if pages:
        small, large = pages["sizes"]
        rows.append(
            f"| *pages* | {small['products']:,} products, {small['orders']:,} orders | "
            f"{large['products']:,} products, {large['orders']:,} orders |"
        )
        for name, page in large["pages"].items():
            rows.append(f"| {name}: p50 / p99 (queries) | {_page(small['pages'][name])} | {_page(page)} |")
    reconcile = found.get("reconcile")
    if reconcile:
        small, large = reconcile["runs"]
        rows.append(
            "| `stripe_reconcile`, products and prices (the read limit allows) | "
            f"{_reconcile_run(small)} | {_reconcile_run(large)} |"
        )
        killed = reconcile["killed_and_continued"]
        rows.append(
            f"| ... killed after {killed['killed_after_seconds']:g} s, then run again | | continued in "
            f"{killed['continued_seconds']:g} s; {killed['pages_read_twice']} list page(s) read twice |"
        )
    return "\n".join(rows)


def _page(page: dict) -> str:
    return f"{page['p50_ms']:g} / {page['p99_ms']:g} ms ({page['queries']})"


def _reconcile_run(run: dict) -> str:
    return (
        f"{run['products_and_prices']:,}: {run['seconds']:g} s ({run['seconds_the_read_limit_allows']:g} s), "
        f"{run['peak_rss_mb']:g} MB"
    )
