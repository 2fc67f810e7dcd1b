"""Work queued after commit: published only once the transaction commits, never failing a committed write;
and tasks that import their services only when they run, so services may import tasks at their top."""

import ast
import importlib
import logging
from pathlib import Path

import pytest
from celery import Task
from django.db import transaction

from config.task_base import OnCommitTask, run_after_commit

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_queued_work_runs_only_when_the_transaction_commits(django_capture_on_commit_callbacks):
    ran = []

    def write_that_fails():
        with transaction.atomic():
            run_after_commit(ran.append, "never")
            raise RuntimeError("the write failed")

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        run_after_commit(ran.append, "published")
        assert ran == []
    with django_capture_on_commit_callbacks(execute=True) as rolled_back, pytest.raises(RuntimeError):
        write_that_fails()

    assert ran == ["published"]
    assert rolled_back == []


@pytest.mark.django_db
def test_a_broker_that_is_down_at_commit_fails_nothing_and_is_logged(django_capture_on_commit_callbacks, caplog):
    def publish():
        raise ConnectionError("broker unreachable")

    with (
        caplog.at_level(logging.ERROR, logger="config.tasks"),
        django_capture_on_commit_callbacks(execute=True),
        transaction.atomic(),
    ):
        run_after_commit(publish)

    assert "not queued after commit (the beat will pick it up)" in caplog.text
    assert "broker unreachable" in caplog.text


def _module_level_imports(path: Path) -> list[str]:
    found = []
    for node in ast.parse(path.read_text()).body:  # the module's top level only, not function bodies
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("tasks_module", sorted(ROOT.glob("apps/*/tasks.py")), ids=lambda path: path.parent.name)
def test_tasks_import_the_project_only_inside_their_bodies(tasks_module):
    """The import-linter contract against circles forgives `tasks -> services`: this is why it may."""
    assert [name for name in _module_level_imports(tasks_module) if name.startswith(("apps", "config"))] == []


@pytest.mark.parametrize("tasks_module", sorted(ROOT.glob("apps/*/tasks.py")), ids=lambda path: path.parent.name)
def test_every_project_task_can_be_queued_after_commit(tasks_module):
    module = importlib.import_module(f"apps.{tasks_module.parent.name}.tasks")
    tasks = [value for value in vars(module).values() if isinstance(value, Task)]

    assert tasks
    assert all(isinstance(task, OnCommitTask) for task in tasks)
