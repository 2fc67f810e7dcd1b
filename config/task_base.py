"""The one way work is queued after a transaction commits.

A task queued inside a transaction must not run before its rows are visible, and must not
run at all if the transaction rolls back: it is published once the transaction commits.
A broker that is down at that moment must not fail the write that already committed:
the failure is logged, and the beat finds the work later (every queued row is also a
row the beat looks for).
"""

import logging

from celery import current_app
from celery.contrib.django.task import DjangoTask
from django.db import transaction

log = logging.getLogger("config.tasks")


def run_after_commit(action, *args, **kwargs) -> None:
    """Call `action(*args, **kwargs)` once the current transaction commits (at once outside one); a failure
    is logged, never raised: what it would have started is picked up by the beat."""

    def run() -> None:
        try:
            action(*args, **kwargs)
        except Exception:
            log.exception("not queued after commit (the beat will pick it up) action=%s", _name(action))

    transaction.on_commit(run)


def queue_task(name: str, *args, countdown: float | None = None) -> None:
    """Publish the task registered under `name` now. Services queue their own slice's tasks by name, so a
    task module may import its services at the top without an import circle (a test holds every name to a
    registered task)."""
    current_app.send_task(name, args=args, countdown=countdown or None)


def queue_task_on_commit(name: str, *args, countdown: float | None = None) -> None:
    """`queue_task` once the current transaction commits, as `run_after_commit` does (never raising)."""

    def publish() -> None:
        queue_task(name, *args, countdown=countdown)

    publish.__qualname__ = name  # what the log names if the broker is down
    run_after_commit(publish)


def _name(action) -> str:
    target = getattr(action, "__self__", None)
    return getattr(target, "name", None) or getattr(action, "__qualname__", repr(action))


class OnCommitTask(DjangoTask):
    """Every task of the project: `task.apply_async_on_commit(...)` publishes it once the transaction commits."""

    def apply_async_on_commit(self, args=None, kwargs=None, **options) -> None:
        run_after_commit(self.apply_async, args, kwargs, **options)

    def delay_on_commit(self, *args, **kwargs) -> None:
        self.apply_async_on_commit(args, kwargs)
