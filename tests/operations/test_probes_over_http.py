"""Production sends browsers to https, but the probes a load balancer or an orchestrator sends over plain HTTP
to `/health/live` and `/health/` are answered where they are, not redirected."""

import json

import pytest

from tests.test_settings import REAL, _boot

# Production settings, in a fresh interpreter.
pytestmark = pytest.mark.integration

PROBE = """
import json
from django.test import Client
client = Client()
answers = {path: client.get(path) for path in ("/health/live", "/health/", "/api/v1/products/")}
print(json.dumps({path: [answer.status_code, answer.get("Location")] for path, answer in answers.items()}))
"""


def test_liveness_and_health_are_answered_over_http_while_the_rest_goes_to_https():
    result = _boot("config.settings.production", PROBE, **REAL, DJANGO_ALLOWED_HOSTS="testserver")

    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.splitlines()[-1])
    assert answers["/health/live"] == [200, None]
    assert answers["/health/"][0] in (200, 503)  # answered, whatever the dependencies say
    assert answers["/api/v1/products/"] == [301, "https://testserver/api/v1/products/"]
