"""The docs' tables that repeat what the code knows hold exactly what `python -m tools.docs.tables` writes from
the code today: a setting, an event handler or a metric added, changed or removed fails here until the pages
are written again."""

import ast
import textwrap

import pytest

from tools.docs import tables

RUN = "run `python -m tools.docs.tables` and commit the pages it rewrites"


@pytest.mark.parametrize("name", sorted(tables.TABLES))
def test_the_page_holds_the_table_the_code_makes(name):
    page, build = tables.TABLES[name]

    written = tables.block(name, (tables.ROOT / page).read_text())

    assert written == build(), f"{page}: the {name} table differs from the code; {RUN}"


def test_the_check_command_passes_on_the_pages_as_they_are(capsys):
    assert tables.main(["--check"]) == 0, capsys.readouterr().out


def test_every_setting_read_is_a_row():
    rows = tables.settings_table()

    for read in tables.settings_reads():
        assert f"| `{read.name}` |" in rows


def test_a_setting_without_a_meaning_cannot_be_documented(monkeypatch, tmp_path):
    (tmp_path / "base.py").write_text('NEW = env.int("A_NEW_SETTING", default=3)\n')
    for module in ("local", "production", "test"):
        (tmp_path / f"{module}.py").write_text("")
    monkeypatch.setattr(tables, "SETTINGS_DIR", tmp_path)

    with pytest.raises(tables.TableError, match=r"A_NEW_SETTING .*`#: \.\.\.` comment"):
        tables.settings_table()


def test_a_meaning_is_the_comment_above_the_read_and_a_default_what_the_environment_would_say(monkeypatch, tmp_path):
    (tmp_path / "base.py").write_text(
        textwrap.dedent(
            """
            # A comment for whoever reads the code.
            #: how long a thing waits,
            #: in seconds
            WAIT = env.float("THING_WAIT_SECONDS", default=2.5)
            #: whether to do it
            DO = env.bool("THING_ENABLED", default=False)
            DAY = 24 * 3600
            #: a day
            SPAN = env.int("THING_SPAN", default=DAY)
            """
        )
    )
    (tmp_path / "local.py").write_text('DO = env.bool("THING_ENABLED", default=True)\n')
    for module in ("production", "test"):
        (tmp_path / f"{module}.py").write_text("")
    monkeypatch.setattr(tables, "SETTINGS_DIR", tmp_path)
    monkeypatch.setattr(tables, "MEANINGS", {})

    rows = tables.settings_table().splitlines()

    assert "| `THING_WAIT_SECONDS` | how long a thing waits, in seconds | `2.5` |" in rows
    assert "| `THING_ENABLED` | whether to do it | `false`; `make run`: `true` |" in rows
    assert "| `THING_SPAN` | a day | `24 * 3600` |" in rows


def test_an_event_type_is_a_row_naming_its_handler_and_slice():
    rows = tables.webhook_events_table().splitlines()

    assert "| `product.updated` | `mirror.events.on_product` | mirror |" in rows
    session_completed = next(row for row in rows if row.startswith("| `checkout.session.completed` |"))
    assert "orders.events.on_session_paid" in session_completed
    assert "billing.events.on_session" in session_completed
    assert len(rows) - 2 == len(tables.webhook_handlers())


def test_every_declared_metric_is_a_row_and_every_alert_names_one():
    declared = {metric.name for metric in tables.metrics()}
    rows = tables.metrics_table()

    assert {"http_request_duration_seconds", "stripe_requests_total", "state_up", "outbox_messages"} <= declared
    assert all(f"| `{name}" in rows for name in declared)
    assert set(tables.ALERTS) <= declared


def test_an_alert_for_a_metric_nobody_declares_fails(monkeypatch):
    monkeypatch.setitem(tables.ALERTS, "retired_metric_total", "> 0")

    with pytest.raises(tables.TableError, match="retired_metric_total"):
        tables.metrics_table()


def test_a_metric_declared_in_code_is_found_wherever_it_is_declared():
    call = ast.parse('X = Counter("widgets_total", "Widgets made.", ["colour"])').body[0].value

    (metric,) = tables._call_metrics(call, tables.ROOT / "config" / "metrics.py")

    assert (metric.name, metric.kind, metric.labels, metric.help) == (
        "widgets_total",
        "Counter",
        ("colour",),
        "Widgets made.",
    )
