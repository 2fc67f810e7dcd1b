"""The one way work is queued after a transaction commits.

A task queued inside a transaction must not run before its rows are visible, and must not
run at all if the transaction rolls back: it is published once the transaction commits.
A broker that is down at that moment must not fail the write that already committed:
the failure is logged, and the beat finds the work later (every queued row is also a
row the beat looks for).
"""

import logging

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


def _name(action) -> str:
    target = getattr(action, "__self__", None)
    return getattr(target, "name", None) or getattr(action, "__qualname__", repr(action))


class OnCommitTask(DjangoTask):
    """Every task of the project: `task.apply_async_on_commit(...)` publishes it once the transaction commits."""

    def apply_async_on_commit(self, args=None, kwargs=None, **options) -> None:
        run_after_commit(self.apply_async, args, kwargs, **options)

    def delay_on_commit(self, *args, **kwargs) -> None:
        self.apply_async_on_commit(args, kwargs)
