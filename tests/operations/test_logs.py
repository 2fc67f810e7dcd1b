"""Log lines carry what an operator searches by: the request, the user, the task, Stripe's request."""

import json
import logging
import os
import subprocess
import sys

import pytest
from django.conf import settings

from apps.payments.gateway.client import gateway
from config import logs
from tests.helpers import client_for, project_log
from tests.users.factories import UserFactory


def _lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.django_db
def test_a_request_line_names_its_request_and_its_authenticated_user():
    user = UserFactory()
    client = client_for(user)

    with project_log("json") as stream:
        answer = client.get("/api/v1/products/999999/")

    not_found = next(line for line in _lines(stream) if line["message"].startswith("Not Found"))
    assert not_found["level"] == "WARNING"
    assert not_found["request_id"] == answer["X-Request-ID"]
    assert not_found["user_id"] == user.pk


@pytest.mark.django_db
def test_an_anonymous_request_names_no_user_and_looks_none_up(client, django_assert_num_queries):
    with project_log("json") as stream, django_assert_num_queries(0):
        client.get("/no/such/path")

    line = next(line for line in _lines(stream) if line["message"].startswith("Not Found"))
    assert "user_id" not in line


@pytest.mark.integration  # a fresh interpreter
def test_an_error_in_a_task_is_one_line_with_its_traceback():
    # A process configured by the settings alone, as a worker is, running a task that fails.
    script = (
        "import django; django.setup()\n"
        "from config.celery import app\n"
        "from apps.payments.mirror.tasks import mirror_sync_task\n"
        "mirror_sync_task.apply(args=['not-a-record-id'], task_id='task-that-fails')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]  # every line is JSON, none a piece of one
    (failure,) = (line for line in lines if line["level"] == "ERROR")
    assert failure["logger"] == "celery.app.trace"
    assert failure["task_id"] == "task-that-fails"
    assert failure["message"].startswith("Task apps.payments.tasks.mirror_sync_task[task-that-fails] raised")
    assert failure["traceback"].startswith("Traceback (most recent call last)")
    assert 'File "' in failure["traceback"]
    assert failure["traceback"].rstrip().endswith("ValueError: Field 'id' expected a number but got 'not-a-record-id'.")


@pytest.mark.django_db
def test_a_line_after_a_stripe_call_names_stripes_request_id(mirror_on):
    logs.begin_task("task-stripe")
    try:
        with project_log("json") as stream:
            gateway().call(lambda options: gateway().v1.products.create(params={"name": "Kettle"}, options=options))
            logging.getLogger("apps.payments.mirror").info("pushed")
    finally:
        logs.end_task()

    pushed = next(line for line in _lines(stream) if line["message"] == "pushed")
    assert pushed["stripe_request_id"].startswith("req_")
    assert mirror_on.requests_seen(method="POST", path_prefix="/v1/products")[-1]["id"] == pushed["stripe_request_id"]


@pytest.mark.integration  # a fresh interpreter
def test_the_format_is_chosen_from_two():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={"DJANGO_SETTINGS_MODULE": "config.settings.test", "LOG_FORMAT": "yaml", "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0
    assert "LOG_FORMAT must be keyvalue or json, not 'yaml'." in result.stderr


@pytest.mark.django_db
def test_a_line_written_after_a_request_names_no_user_of_it():
    client_for(UserFactory()).get("/api/v1/products/999999/")

    with project_log("json") as stream:
        logging.getLogger("apps.payments").warning("between requests")

    (line,) = _lines(stream)
    assert "user_id" not in line
