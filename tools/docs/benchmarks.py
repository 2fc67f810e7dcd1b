"""The docs' benchmark figures, written from the reports kept in docs/benchmarks/, never typed by hand.

Each report is what a `make bench-...` run left in `var/bench/<benchmark>.json`, copied into docs/benchmarks/
at the commit it names; `python -m tools.docs.tables` writes the tables from them (`TABLES` there).
"""

import json
from collections import Counter
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
        f"{setup['events_per_rate']:,} events at each rate, medians of {setup['rounds']} rounds (range in "
        "brackets); the capacity each rate is a share of was measured just before it.",
        "",
        "| arrivals | capacity | a second | ack p50 | ack p99 | of it, the client sending late: p99 | "
        "processed a second | lag p50 | lag p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for share, rate in found["ours"].items():
        late = _spread(rate["sent_late_p99_ms"], " ms") if "sent_late_p99_ms" in rate else "not measured"
        capacity = _spread(found["capacity_acks_per_second"][share], "/s")
        rows.append(
            f"| {share} of capacity | {capacity} | {_spread(rate['arrivals_per_second'])} | "
            f"{_spread(rate['ack_latency_p50_ms'], ' ms')} | {_spread(rate['ack_latency_p99_ms'], ' ms')} | "
            f"{late} | {_spread(rate['processed_per_second'])} | {_spread(rate['lag_p50_ms'], ' ms')} | "
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


def mirror_table() -> str:
    """bench-mirror: how fast the mirror empties a full queue at Stripe's live limits, and what it costs."""
    found = report("mirror")
    setup = found["setup"]
    limit = found["limit_used"]
    cpu = found["cpu_ms_per_object"]
    rows = [
        where_it_ran(found),
        "",
        f"{setup['products_with_one_price']:,} products with one price each and {setup['users']:,} users, queued "
        f"first, then mirrored by {setup['workers']} workers of {setup['concurrency_per_worker']} "
        f"{setup['pool']} against the emulator limited as Stripe's live mode "
        f"({setup['stripe_limits']['account_per_second']}/s for the account, "
        f"{setup['stripe_limits']['endpoint_per_second']}/s per endpoint); medians of {setup['rounds']} rounds "
        "(range in brackets).",
        "",
        "| | |",
        "|---|---|",
        f"| objects mirrored a second | {_spread(found['objects_per_second'])} |",
        f"| Stripe requests per object | {_spread(found['stripe_requests_per_object'])} |",
        f"| per-endpoint limit used (`POST /v1/products`) | {_share(limit['POST /v1/products'])} |",
        f"| account limit used | {_share(limit['account'])} |",
    ]
    for process, spread in cpu.items():
        rows.append(f"| CPU per object: {process} | {_spread(spread, ' ms')} |")
    return "\n".join(rows)


def _share(values: dict) -> str:
    """A share of a limit as percent: `98% (95-100)`."""
    percent = {name: round(value * 100) for name, value in values.items()}
    return _spread(percent, "%")


def dashboard_table() -> str:
    """bench-dashboard: the admin dashboard's time over each range, empty and full, and its queries."""
    found = report("dashboard")
    setup = found["setup"]
    rows = [
        where_it_ran(found),
        "",
        f"{setup['page']}, through Django's test client on production settings; {setup['orders']:,} orders "
        f"({found['data']['payments']:,} payments, {found['data']['refunds']:,} refunds) over "
        f"{found['data']['days']} days; {setup['requests_each_round']} requests a round, medians of "
        f"{setup['rounds']} rounds (range in brackets); target p95 under {found['target_p95_ms']} ms.",
        "",
        "| range | empty: p50 / p95 | with the orders: p50 / p95 | queries |",
        "|---|---|---|---|",
    ]
    for name, full in found["with_orders"].items():
        empty = found["empty"][name]
        rows.append(
            f"| {name.replace('_', ' ')} | {_spread(empty['p50_ms'], ' ms')} / {_spread(empty['p95_ms'], ' ms')} | "
            f"{_spread(full['p50_ms'], ' ms')} / {_spread(full['p95_ms'], ' ms')} | {_spread(full['queries'])} |"
        )
    return "\n".join(rows)


def emulator_table() -> str:
    """bench-emulator: the emulator's requests a second through the SDK."""
    found = report("stripe-emulator")
    clients = found["clients"]
    rows = [
        where_it_ran(found),
        "",
        f"{clients['processes']} client processes of {clients['threads_per_process']} threads ({clients['sdk']}); "
        f"medians of {found['rounds']} rounds (range in brackets); target at least "
        f"{found['target_requests_per_second']} a second.",
        "",
        "| | requests a second | p50 | p99 |",
        "|---|---|---|---|",
    ]
    for name in ("customer_create", "customer_retrieve"):
        phase = found[name]
        rows.append(
            f"| {name.replace('_', ' ')} | {_spread(phase['requests_per_second'])} | "
            f"{_spread(phase['latency_p50_ms'], ' ms')} | {_spread(phase['latency_p99_ms'], ' ms')} |"
        )
    return "\n".join(rows)


def soak_table() -> str:
    """`make soak`: what the load did, what the faults were, and what the checker found, from its summary."""
    found = report("soak")
    environment, soak, requests = found["environment"], found["soak"], found["requests"]
    counts, mismatches = found["check"]["counts"], found["check"]["mismatches"]
    minutes = f"{soak['duration_s'] / 60:g} min"
    verdict = {0: "the checker found no mismatch", 1: "the checker found 1 mismatch"}.get(
        len(mismatches), f"the checker found {len(mismatches)} mismatches"
    )
    kills = Counter(kill["worker"] for kill in found["kills"])
    orders = dict(counts["orders"])
    total = orders.pop("total")
    webhooks = counts["webhooks"]
    mail = counts["mail"]
    rows = [
        f"Measured {environment['date']} at commit `{environment['commit']}` on {environment['cpus']} cores "
        f"({environment['cpu_model']}), everything on the same cores, Locust included; {verdict}"
        f"{'' if found['ok'] else ' (the run failed)'}.",
        "",
        "| | |",
        "|---|---|",
        f"| requests | {requests['total']:,} in {minutes} ({requests['per_second']:g} a second): "
        f"{requests['server_errors_5xx']} answered 5xx, {requests['unanswered']} unanswered, "
        f"{requests['unexpected']} unexpected |",
        f"| orders | {total:,}: " + ", ".join(f"{count:,} {status}" for status, count in sorted(orders.items())) + " |",
        f"| refunds | {counts['refunds']['stripe']:,} in Stripe, {counts['refunds']['local']:,} recorded here |",
        "| Stripe faults injected | "
        + ", ".join(f"{rule}: {hits:,}" for rule, hits in found["faults_injected"].items())
        + " |",
        f"| workers killed | {sum(kills.values())} (SIGKILL every {soak['kill_every_s']:g} s: "
        + ", ".join(f"{name} {count}" for name, count in sorted(kills.items()))
        + ") |",
        f"| webhooks | {webhooks['events']:,} events sent, {webhooks['deliveries']:,} deliveries (duplicates and "
        f"shuffling), {webhooks['stored']:,} stored: "
        + ", ".join(f"{count:,} {state}" for state, count in sorted(webhooks["states"].items()))
        + " |",
        "| mirror | "
        + ", ".join(f"{count:,} {resource}" for resource, count in counts["mirror"].items())
        + ": one Stripe object each |",
        f"| mail | {mail['received']:,} messages received ({mail['receipts']:,} receipts, "
        f"{mail['refund_notices']:,} refund notices); {mail['received_again_after_a_kill']} received again after "
        "a mail worker was killed mid-send |",
        f"| settled after the load | {found['settled']['seconds']} s |",
        "",
        "Each endpoint in that run (ms; the machine is saturated):",
        "",
        "| endpoint | count | p50 | p99 |",
        "|---|---|---|---|",
    ]
    endpoints = sorted(requests["by_endpoint"].items(), key=lambda item: -item[1]["count"])
    for name, endpoint in endpoints:
        if not name.startswith("emulator"):
            rows.append(f"| `{name}` | {endpoint['count']:,} | {endpoint['p50_ms']:g} | {endpoint['p99_ms']:g} |")
    return "\n".join(rows)
