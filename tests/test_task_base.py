"""Work queued after commit: published only once the transaction commits, never failing a committed write;
every task of the project queueable after commit, and every task a service queues by name registered."""

import ast
import importlib
import logging
from pathlib import Path

import pytest
from celery import Task
from django.db import transaction

from config.celery import app as celery_app
from config.task_base import OnCommitTask, queue_task, queue_task_on_commit, run_after_commit

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


TASK_MODULES = sorted([*ROOT.glob("apps/*/tasks.py"), *ROOT.glob("apps/*/*/tasks.py")])


def _dotted(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


@pytest.mark.parametrize("tasks_module", TASK_MODULES, ids=_dotted)
def test_every_project_task_can_be_queued_after_commit(tasks_module):
    module = importlib.import_module(_dotted(tasks_module))
    tasks = [value for value in vars(module).values() if isinstance(value, Task)]

    assert tasks
    assert all(isinstance(task, OnCommitTask) for task in tasks)


def _names_queued_by(path: Path) -> list[str]:
    """The task names a module passes to `queue_task` or `queue_task_on_commit`: a literal, or a name the module
    holds (its own constant or one it imports)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in {
            queue_task.__name__,
            queue_task_on_commit.__name__,
        }:
            first = node.args[0]
            if isinstance(first, ast.Name):
                names.append(getattr(importlib.import_module(_dotted(path)), first.id))
            else:
                names.append(first.value)
    return names


def test_every_task_a_service_queues_by_name_is_registered():
    """A name that no task carries would be published and dropped by every worker: caught here, not in production."""
    for path in TASK_MODULES:
        importlib.import_module(_dotted(path))
    queued = {
        name for path in ROOT.glob("apps/**/*.py") if "migrations" not in path.parts for name in _names_queued_by(path)
    }

    assert queued >= {"apps.payments.tasks.mirror_sync_task", "apps.payments.tasks.drain_webhook_events_task"}
    assert queued <= set(celery_app.tasks)
