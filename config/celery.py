"""The Celery application: configured from Django settings (`CELERY_*`), tasks found in each app's `tasks.py`
and in each slice's of payments."""

import logging
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("commerce", task_cls="config.task_base:OnCommitTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(
    ["apps.payments.billing", "apps.payments.mirror", "apps.payments.orders", "apps.payments.webhooks"]
)


@signals.worker_init.connect
@signals.beat_init.connect
def _refuse_unsafe_start(**kwargs) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from config.deploy import refuse_unsafe_start  # Django is set up only once the worker starts

    try:
        refuse_unsafe_start()
    except ImproperlyConfigured as refusal:
        # Celery logs and swallows an exception from a signal handler; an exit is what stops the process.
        logging.getLogger("config.deploy").critical("%s", refusal)
        raise SystemExit(1) from refusal


def _close_old_connections(task) -> None:
    """What Django does around a request: a connection older than `CONN_MAX_AGE`, broken, or left inside a
    transaction is closed; a healthy one is kept (and checked before its next use, `CONN_HEALTH_CHECKS`).

    Celery's own Django fixup closes every connection before and after every task whatever `CONN_MAX_AGE`
    says, unless `CELERY_DB_REUSE_MAX` is set (config/settings/base.py sets it): a new PostgreSQL connection
    per task cost a mirror worker about a third of its CPU. An eager task runs inside its caller's
    transaction, whose connection must stay."""
    if task is not None and not getattr(task.request, "is_eager", False):
        from django.db import close_old_connections

        close_old_connections()


@signals.task_prerun.connect
def _task_prerun(task_id=None, task=None, **kwargs) -> None:
    from config import logs, metrics

    _close_old_connections(task)
    logs.begin_task(task_id)
    metrics.task_started(task_id)


@signals.task_postrun.connect
def _task_postrun(task_id=None, task=None, state=None, **kwargs) -> None:
    from config import logs, metrics

    metrics.task_finished(task_id, task.name, state)
    logs.end_task()
    _close_old_connections(task)
