"""The docs' tables that repeat what the code knows, written from the code so they cannot drift.

    python -m tools.docs.tables           # rewrite every generated block in docs/
    python -m tools.docs.tables --check   # exit 1 naming each block that differs from the code

A generated block sits between `<!-- generated: NAME -->` and `<!-- end generated -->` in its page:

- `settings` (docs/configuration.md): every environment variable `config/settings/*.py` reads, with its
  default in each settings module and its meaning, the `#:` comment on the lines just above the read.
- `webhook-events` (docs/webhooks.md): `HANDLERS` in `apps/payments/webhooks/handlers.py`, the event types the
  app acts on, each with its handler and the slice that owns it.
- `metrics` (docs/operating.md): every metric `config/metrics.py` and `apps/operations/metrics.py` declare,
  with its help text, and the suggested alert kept in `ALERTS` below.
- `bench-webhooks`, `bench-workers`, `bench-scale`, `bench-mirror`, `bench-dashboard`, `bench-emulator` and
  `soak` (docs/scaling.md): the figures of the reports kept in docs/benchmarks/ (`tools.docs.benchmarks`).

The code is read as text (its syntax tree), never imported: no Django setup, no settings module chosen.
"""

import argparse
import ast
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tools.docs import benchmarks

ROOT = Path(__file__).resolve().parent.parent.parent
SETTINGS_DIR = ROOT / "config" / "settings"
HANDLERS_FILE = ROOT / "apps" / "payments" / "webhooks" / "handlers.py"
METRICS_FILES = (ROOT / "config" / "metrics.py", ROOT / "apps" / "operations" / "metrics.py")

START = "<!-- generated: {name} -->"
END = "<!-- end generated -->"


class TableError(Exception):
    """The code cannot be turned into a table (a setting without a meaning, an alert for no metric)."""


# --- Settings -----------------------------------------------------------------------------------------------

# Which settings module runs where, in the order the columns of a row name them.
SETTINGS_MODULES = {"base": "default", "local": "`make run`", "production": "production", "test": "tests"}
ENV_READERS = {"str", "int", "bool", "float", "list", "tuple", "dict", "json", "url", "path"}
ENV_URL_READERS = {"db_url", "db", "cache_url", "cache", "email_url", "email", "search_url"}
# Meanings of variables read only by a settings module whose reads carry no `#:` comment. The test settings
# belong to the test suite; a `#:` comment beside the read there replaces the line here.
MEANINGS = {
    "PYTEST_XDIST_WORKER": "set by pytest-xdist for each of its workers (`gw0`, `gw1`, ...): which Redis databases "
    "that worker's tests use",
    "REDIS_TEST_URL": "the Redis database the tests' cache uses",
}


@dataclass(frozen=True)
class SettingRead:
    name: str
    module: str  # base, local, production, test
    line: int
    default: str  # as the docs show it
    meaning: str  # the `#:` comment above the read; empty when there is none
    section: str  # the `# --- Section ---` of base.py it sits under


def _env_read_name(call: ast.Call) -> str | None:
    """The variable an `env.<kind>("NAME", ...)`, `env("NAME")`, `os.environ.get("NAME")` or
    `os.getenv("NAME")` call reads; None for any other call."""
    func = call.func
    is_env = (
        (isinstance(func, ast.Name) and func.id == "env")
        or (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "env"
            and func.attr in ENV_READERS | ENV_URL_READERS
        )
        or (isinstance(func, ast.Attribute) and func.attr == "getenv" and _dotted(func.value) == "os")
        or (isinstance(func, ast.Attribute) and func.attr == "get" and _dotted(func.value) == "os.environ")
    )
    if not is_env:
        return None
    if not call.args or not isinstance(call.args[0], ast.Constant) or not isinstance(call.args[0].value, str):
        raise TableError(f"line {call.lineno}: an environment variable read by a name that is not a literal")
    return call.args[0].value


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _default_node(call: ast.Call, parents: dict[ast.AST, ast.AST]) -> ast.AST | None:
    """What the setting is when the variable is unset: the call's default, or what follows an `or` when the
    call's own default is empty (`env.str("KEY", default="") or "dev-key"`)."""
    default = next((keyword.value for keyword in call.keywords if keyword.arg == "default"), None)
    if default is None and len(call.args) > 1:
        default = call.args[1]
    parent = parents.get(call)
    if isinstance(parent, ast.BoolOp) and isinstance(parent.op, ast.Or) and parent.values[0] is call:
        empty = default is None or (isinstance(default, ast.Constant | ast.List) and not _literal(default))
        if empty:
            return parent.values[1] if len(parent.values) == 2 else ast.BoolOp(ast.Or(), parent.values[1:])
    return default


def _literal(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _show_default(node: ast.AST | None, source: str, assigned: dict[str, ast.AST]) -> str:
    """The default as the docs show it: a value as it would be written in the environment, else the code."""
    for _ in range(3):  # a name the module assigns (`ONE_YEAR`) shows what it is, not what it is called
        if isinstance(node, ast.Name) and node.id in assigned:
            node = assigned[node.id]
    if node is None:
        return "none"
    if isinstance(node, ast.Call) and (other := _env_read_name(node)):
        return f"`{other}`, else {_show_default(_default_node(node, {}), source, assigned)}"
    try:
        value = ast.literal_eval(node)
    except ValueError:
        text = " ".join((ast.get_source_segment(source, node) or ast.unparse(node)).split())
        return _code(re.sub(r"([(\[{]) | ([)\]}])", r"\1\2", text))
    if isinstance(value, bool):
        return _code(str(value).lower())
    if isinstance(value, list | tuple):
        value = ",".join(str(item) for item in value)
    if value == "":
        return "empty"
    return _code(str(value))


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}".replace("|", "\\|")


def _meaning_above(lines: list[str], line: int) -> str:
    """The `#:` comment lines right above `line` (1-based), joined."""
    found = []
    index = line - 2
    while index >= 0 and lines[index].strip().startswith("#:"):
        found.append(lines[index].strip()[2:].strip())
        index -= 1
    return " ".join(reversed(found))


SECTION = re.compile(r"^# --- (.+?)(?: \(.*\))? -+$")


def settings_reads() -> list[SettingRead]:
    """Every read of an environment variable in config/settings/, in the order of the files' lines."""
    reads = []
    for module in SETTINGS_MODULES:
        path = SETTINGS_DIR / f"{module}.py"
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        assigned = {
            node.targets[0].id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        }
        sections = {number: match[1] for number, text in enumerate(lines, 1) if (match := SECTION.match(text))}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            try:
                name = _env_read_name(node)
            except (TableError, benchmarks.MissingReport) as error:
                raise TableError(f"{path.relative_to(ROOT)}: {error}") from None
            if name is None:
                continue
            section = max(((at, title) for at, title in sections.items() if at < node.lineno), default=(0, "Django"))[1]
            reads.append(
                SettingRead(
                    name=name,
                    module=module,
                    line=node.lineno,
                    default=_show_default(_default_node(node, parents), source, assigned),
                    meaning=_meaning_above(lines, node.lineno),
                    section=section,
                )
            )
    return sorted(reads, key=lambda read: (list(SETTINGS_MODULES).index(read.module), read.line))


def settings_table() -> str:
    reads = settings_reads()
    names = list(dict.fromkeys(read.name for read in reads))
    problems = [f"{name}: read, but no longer by any settings module" for name in MEANINGS if name not in names]
    rows_by_section: dict[str, list[str]] = {}
    for name in names:
        own = [read for read in reads if read.name == name]
        meanings = [read.meaning for read in own if read.meaning]
        if meanings and name in MEANINGS:
            problems.append(f"{name}: explained both by a `#:` comment and by MEANINGS in tools/docs/tables.py")
        meaning = meanings[0] if meanings else MEANINGS.get(name, "")
        if not meaning:
            where = ", ".join(f"config/settings/{read.module}.py:{read.line}" for read in own)
            problems.append(f"{name} ({where}): say what it means in a `#: ...` comment on the line above the read")
        defaults = {}
        for read in own:
            defaults.setdefault(read.module, read.default)
        shown = []
        for module, label in SETTINGS_MODULES.items():
            if module in defaults and (module == "base" or defaults[module] != defaults.get("base")):
                shown.append(defaults[module] if module == "base" else f"{label}: {defaults[module]}")
        first = own[0]
        section = first.section if first.module == "base" else f"Read only by the {first.module} settings"
        rows_by_section.setdefault(section, []).append(f"| `{name}` | {meaning} | {'; '.join(shown)} |")
    if problems:
        raise TableError("the settings table cannot be written:\n  " + "\n  ".join(problems))
    parts = []
    for section, rows in rows_by_section.items():
        parts += [f"### {section}", "", "| variable | meaning | default |", "|---|---|---|", *rows, ""]
    return "\n".join(parts).rstrip("\n")


# --- Webhook events ------------------------------------------------------------------------------------------


def _handler_aliases(tree: ast.Module) -> dict[str, str]:
    """`catalog_events` -> `mirror.events`: the slice module each imported name in handlers.py is."""
    aliases = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("apps.payments."):
            slice_name = node.module.removeprefix("apps.payments.")
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{slice_name}.{alias.name}"
    return aliases


def _handler_text(node: ast.AST, aliases: dict[str, str]) -> list[tuple[str, str]]:
    """[(when, module.function)] for one value of HANDLERS."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
        return [("", f"{aliases[node.value.id]}.{node.attr}")]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "by_session_mode":
        return [
            (f"`mode: {keyword.arg}`", handler)
            for keyword in node.keywords
            for _, handler in _handler_text(keyword.value, aliases)
        ]
    raise TableError(f"apps/payments/webhooks/handlers.py:{node.lineno}: a handler the docs cannot name")


def webhook_handlers() -> list[tuple[str, list[tuple[str, str]]]]:
    """[(event type, [(when, handler)])] in the order of HANDLERS."""
    tree = ast.parse(HANDLERS_FILE.read_text())
    aliases = _handler_aliases(tree)
    for node in tree.body:
        target = (
            node.target
            if isinstance(node, ast.AnnAssign)
            else (node.targets[0] if isinstance(node, ast.Assign) else None)
        )
        if isinstance(target, ast.Name) and target.id == "HANDLERS" and isinstance(node.value, ast.Dict):
            return [
                (ast.literal_eval(key), _handler_text(value, aliases))
                for key, value in zip(node.value.keys, node.value.values, strict=True)
            ]
    raise TableError("apps/payments/webhooks/handlers.py has no HANDLERS table")


def webhook_events_table() -> str:
    rows = ["| event type | handled by | slice |", "|---|---|---|"]
    for event_type, handlers in webhook_handlers():
        handled = "<br>".join(f"{when}: `{handler}`" if when else f"`{handler}`" for when, handler in handlers)
        slices = ", ".join(dict.fromkeys(handler.split(".")[0] for _, handler in handlers))
        rows.append(f"| `{event_type}` | {handled} | {slices} |")
    return "\n".join(rows)


# --- Metrics ------------------------------------------------------------------------------------------------

METRIC_CLASSES = {"Counter", "Histogram", "Gauge", "Summary", "GaugeMetricFamily", "CounterMetricFamily"}

# What to alert on, by metric: advice, so kept by hand; a key that is no metric fails the docs' tests.
ALERTS = {
    "state_up": "`state_up == 0` for 5 min",
    "http_request_duration_seconds": "`5xx` rate > 1% for 5 min; p99 of `stripe-webhook` > 1 s",
    "stripe_requests_total": '`status=~"5..|error"` > 5% for 5 min; any `429` for 10 min',
    "stripe_budget_wait_seconds_total": "wait seconds per second > 0.5 for 15 min (raise the budget or expect "
    "slower syncs)",
    "stripe_budget_exhausted_total": "rate > 0 for 15 min",
    "stripe_budget_in_use_ratio": "> 0.9 for 10 min",
    "stripe_circuit_open": "`== 1` for 2 min",
    "mirror_rows": '`mirror_rows{state="failed"} > 0`',
    "mirror_oldest_pending_age_seconds": "> 600 s",
    "webhook_deliveries_total": "`invalid` rate > 0 for 10 min (a rolled secret?)",
    "webhook_events_processed_total": "any `parked`",
    "webhook_processing_lag_seconds": "p95 > 60 s for 10 min",
    "webhook_oldest_waiting_age_seconds": "> 300 s",
    "webhook_events_parked": "> 0",
    "outbox_messages": '`outbox_messages{state="failed"} > 0`',
    "outbox_oldest_due_age_seconds": "> 600 s",
    "celery_tasks_total": "`failed` rate > 0 for 10 min",
}


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    labels: tuple[str, ...]
    help: str
    declared_in: str


def _string(node: ast.AST | None) -> str | None:
    if node is None:
        return None
    value = _literal(node)
    return value if isinstance(value, str) else None


def _call_metrics(call: ast.Call, path: Path) -> Iterator[Metric]:
    kind = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
    if kind not in METRIC_CLASSES:
        return
    keywords = {keyword.arg: keyword.value for keyword in call.keywords}
    name = _string(call.args[0] if call.args else keywords.get("name"))
    text = _string(call.args[1] if len(call.args) > 1 else keywords.get("documentation"))
    if name is None or text is None:
        raise TableError(f"{path.relative_to(ROOT)}:{call.lineno}: a {kind} whose name or help is not a literal")
    label_node = call.args[2] if len(call.args) > 2 else keywords.get("labelnames", keywords.get("labels"))
    labels = tuple(_literal(label_node) or ()) if label_node is not None else ()
    yield Metric(name, kind, labels, text, str(path.relative_to(ROOT)))


def metrics() -> list[Metric]:
    """Every metric declared, once each, in the order of the files."""
    found: dict[str, Metric] = {}
    for path in METRICS_FILES:
        tree = ast.parse(path.read_text())
        calls = sorted((node for node in ast.walk(tree) if isinstance(node, ast.Call)), key=lambda c: c.lineno)
        for call in calls:
            for metric in _call_metrics(call, path):
                found.setdefault(metric.name, metric)
    return list(found.values())


def metrics_table() -> str:
    declared = metrics()
    stale = sorted(set(ALERTS) - {metric.name for metric in declared})
    if stale:
        raise TableError(f"ALERTS in tools/docs/tables.py names metrics nobody declares: {', '.join(stale)}")
    rows = ["| metric | kind | what it counts | suggested alert |", "|---|---|---|---|"]
    for metric in declared:
        labels = "{" + ",".join(metric.labels) + "}" if metric.labels else ""
        kind = {"GaugeMetricFamily": "gauge", "CounterMetricFamily": "counter"}.get(metric.kind, metric.kind.lower())
        help_text = metric.help.replace("|", "\\|")
        rows.append(f"| `{metric.name}{labels}` | {kind} | {help_text} | {ALERTS.get(metric.name, '')} |")
    return "\n".join(rows)


# --- The pages ------------------------------------------------------------------------------------------------

TABLES: dict[str, tuple[str, Callable[[], str]]] = {
    "settings": ("docs/configuration.md", settings_table),
    "webhook-events": ("docs/webhooks.md", webhook_events_table),
    "metrics": ("docs/operating.md", metrics_table),
    "bench-webhooks": ("docs/scaling.md", benchmarks.webhooks_table),
    "bench-workers": ("docs/scaling.md", benchmarks.workers_table),
    "bench-scale": ("docs/scaling.md", benchmarks.data_growth_table),
    "bench-mirror": ("docs/scaling.md", benchmarks.mirror_table),
    "bench-dashboard": ("docs/scaling.md", benchmarks.dashboard_table),
    "bench-emulator": ("docs/scaling.md", benchmarks.emulator_table),
    "soak": ("docs/scaling.md", benchmarks.soak_table),
}


def block(name: str, page_text: str) -> str:
    """What a page holds between the markers of one generated table (without the markers)."""
    start = START.format(name=name)
    if page_text.count(start) != 1 or END not in page_text.split(start, 1)[1]:
        raise TableError(f"the page has no single `{start}` ... `{END}` block")
    return page_text.split(start, 1)[1].split(END, 1)[0].strip("\n")


def with_block(name: str, page_text: str, table: str) -> str:
    """The page with one generated block replaced by `table`."""
    block(name, page_text)  # the markers are there, once
    start = START.format(name=name)
    before, rest = page_text.split(start, 1)
    after = rest.split(END, 1)[1]
    return f"{before}{start}\n{table}\n{END}{after}"


def drifted() -> list[str]:
    """The names of the tables whose page no longer says what the code does."""
    names = []
    for name, (page, build) in TABLES.items():
        if block(name, (ROOT / page).read_text()) != build():
            names.append(name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docs.tables", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table drifted")
    options = parser.parse_args(argv)
    try:
        if options.check:
            stale = drifted()
            for name in stale:
                page = TABLES[name][0]
                sys.stdout.write(f"{page}: the {name} table differs from the code; run python -m tools.docs.tables\n")
            return 1 if stale else 0
        for name, (page, build) in TABLES.items():
            path = ROOT / page
            text = path.read_text()
            updated = with_block(name, text, build())
            if updated != text:
                path.write_text(updated)
                sys.stdout.write(f"{page}: the {name} table written\n")
    except (TableError, benchmarks.MissingReport) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
