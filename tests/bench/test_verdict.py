"""What every benchmark ends with: its report, where it ran, its checks, and an exit status that means something."""

import json

import pytest
from django.conf import settings

from tools.bench import verdict
from tools.bench.verdict import finish


@pytest.fixture(autouse=True)
def results(tmp_path, monkeypatch):
    monkeypatch.setattr(verdict, "RESULTS", tmp_path / "bench")
    return tmp_path / "bench"


def _database_url() -> str:
    return f"postgres:///{settings.DATABASES['default']['NAME']}"


def test_a_failed_check_is_exit_status_1_and_named(capsys):
    status = finish({"benchmark": "mirror", "lost": 1}, {"nothing_lost": False, "no_429_from_stripe": True})

    out, err = capsys.readouterr()
    report = json.loads(out)
    assert status == 1
    assert report["failed"] == ["nothing_lost"]
    assert report["checks"] == {"nothing_lost": False, "no_429_from_stripe": True}
    assert "failed nothing_lost" in err


def test_all_checks_held_is_exit_status_0(capsys):
    assert finish({"benchmark": "emulator"}, {"at_least_500_requests_per_second": True}) == 0
    assert json.loads(capsys.readouterr().out)["failed"] == []


def test_the_environment_names_the_commit_the_machine_and_postgresqls_settings(capsys, db):
    finish({"benchmark": "webhooks"}, {}, _database_url())

    environment = json.loads(capsys.readouterr().out)["environment"]
    assert environment["cpus"] >= 1
    assert environment["commit"] not in ("", "unknown")
    assert {"django", "psycopg", "celery"} <= set(environment["packages"])
    assert {"fsync", "synchronous_commit", "autovacuum", "shared_buffers"} <= set(environment["postgresql"])


def test_the_report_is_left_where_the_docs_take_their_figures_from(capsys, results):
    finish({"benchmark": "mirror", "objects_per_second": 61.8}, {"nothing_lost": True})

    printed = json.loads(capsys.readouterr().out)
    assert json.loads((results / "mirror.json").read_text()) == printed
    assert printed["environment"]["date"].count("-") == 2
