"""The API fuzzed from its own OpenAPI schema, as an anonymous client, a customer and staff.

Every operation in `/api/schema/` gets generated requests, valid and invalid, through the deployed WSGI
application (`config.wsgi`): no answer may be a 5xx, and every answer must be one the schema declares, in
the shape it declares. `make test` runs a bounded, seeded budget; `make fuzz` a long one (`FUZZ_EXAMPLES`,
`FUZZ_SEED`) and prints a JSON summary. Stripe is the emulator with a product on sale, so valid carts
really reach checkout.
"""

import json
import os

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections

from apps.catalog import services as catalog
from tests.fuzzing import FuzzReport, fuzz, schema_operations
from tests.helpers import client_for
from tests.users.factories import UserFactory, operator

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
SEED = int(os.environ.get("FUZZ_SEED", "20261123"))
SUMMARY = os.environ.get("FUZZ_SUMMARY", "")


@pytest.fixture
def in_process_requests(db):
    """Requests served inside the test's transaction, as Django's test client serves them: the handler's
    end-of-request `close_old_connections` would otherwise close the connection the test is using."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(in_process_requests, mirror_on, settings):
    from config.wsgi import application

    # Generous limits: a rate limit answering 429 after 30 requests would hide what comes after it.
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": dict.fromkeys(rates, "9999/second")}
    teapot = catalog.product_create(name="Teapot")
    catalog.price_create(product=teapot, unit_amount=4500, currency="eur")
    return schemathesis.openapi.from_wsgi("/api/schema/", application)


def _headers(user) -> dict[str, str]:
    return {"Authorization": client_for(user)._credentials["HTTP_AUTHORIZATION"]}


@pytest.mark.parametrize("who", ["anonymous", "customer", "staff"])
def test_every_operation_answers_as_its_schema_declares(api_schema, who):
    headers = {"anonymous": dict, "customer": lambda: _headers(UserFactory()), "staff": lambda: _headers(operator())}[
        who
    ]()

    report = fuzz(api_schema, who=who, headers=headers, examples=EXAMPLES, seed=SEED, report=FuzzReport())

    if SUMMARY:  # `make fuzz` gathers the three identities' reports into one summary
        with open(SUMMARY, "a") as summary:
            summary.write(
                json.dumps(
                    {"identity": who, "examples_per_operation_and_mode": EXAMPLES, "seed": SEED, **report.as_dict()}
                )
                + "\n"
            )
    assert report.operations == schema_operations(api_schema.raw_schema)  # every operation the schema declares
    assert report.unfuzzed() == [], "operations that got no example"
    assert report.failures == [], "\n\n".join(
        f"{f['identity']} {f['operation']} ({f['mode']}):\n{f['failure']}" for f in report.failures
    )
