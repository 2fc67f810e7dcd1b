"""The Celery application: configured from Django settings (`CELERY_*`), tasks found in each app's `tasks.py`."""

import logging
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("commerce", task_cls="config.task_base:OnCommitTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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


@signals.task_prerun.connect
def _task_prerun(task_id=None, task=None, **kwargs) -> None:
    from config import logs, metrics

    logs.begin_task(task_id)
    metrics.task_started(task_id)


@signals.task_postrun.connect
def _task_postrun(task_id=None, task=None, state=None, **kwargs) -> None:
    from config import logs, metrics

    metrics.task_finished(task_id, task.name, state)
    logs.end_task()
