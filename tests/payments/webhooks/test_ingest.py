"""`POST /stripe/webhook/`: verified, stored once, answered at once; bad input is a plain 400."""

import io
import json
import threading
import time

import pytest
import requests
from djstripe import models as djstripe_models

from apps.payments.webhooks.models import WebhookEvent
from config.celery import app as celery_app
from tests.payments.webhook_signing import SECRET, body, event, signature
from tests.worker_fixtures import wait_until, worker_idle

URL = "/stripe/webhook/"
PRODUCT = {"id": "prod_Test1", "object": "product", "name": "Tea", "active": True, "updated": 1_700_000_000}


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRETS = [SECRET]


def post(client, payload: bytes, sig: str | None, **headers):
    if sig is not None:
        headers["HTTP_STRIPE_SIGNATURE"] = sig
    return client.generic("POST", URL, payload, content_type="application/json", **headers)


@pytest.mark.django_db
class TestGoodEvents:
    def test_stored_once_and_queued_after_commit(self, client, django_capture_on_commit_callbacks):
        payload = body(event("product.updated", PRODUCT))

        with django_capture_on_commit_callbacks() as callbacks:
            response = post(client, payload, signature(payload))

        assert response.status_code == 200
        assert response.json() == {"received": True, "duplicate": False}
        stored = WebhookEvent.objects.get()
        assert (stored.stripe_id, stored.type, stored.state, stored.deliveries) == (
            "evt_test0001",
            "product.updated",
            "received",
            1,
        )
        raw = djstripe_models.Event.objects.get(id="evt_test0001")
        assert raw.stripe_data["data"]["object"]["name"] == "Tea"
        assert raw.type == "product.updated"
        assert len(callbacks) == 1

    def test_the_same_event_three_times_is_stored_and_queued_once(self, client, django_capture_on_commit_callbacks):
        payload = body(event("product.updated", PRODUCT))

        with django_capture_on_commit_callbacks() as callbacks:
            answers = [post(client, payload, signature(payload)).json() for _ in range(3)]

        assert [a["duplicate"] for a in answers] == [False, True, True]
        assert WebhookEvent.objects.get().deliveries == 3
        assert djstripe_models.Event.objects.count() == 1
        assert len(callbacks) == 1

    def test_any_secret_of_a_rotation_is_accepted(self, client, settings):
        settings.STRIPE_WEBHOOK_SECRETS = ["whsec_newSecret0000000000000000000000", SECRET]
        old = body(event("product.updated", PRODUCT, event_id="evt_old"))
        both = body(event("product.updated", PRODUCT, event_id="evt_both"))
        # During a roll Stripe signs with the old and the new secret at once.
        two_signatures = signature(both, "whsec_newSecret0000000000000000000000") + "," + signature(both).split(",")[1]

        assert post(client, old, signature(old)).status_code == 200
        assert post(client, both, two_signatures).status_code == 200


@pytest.mark.django_db
class TestBadInput:
    @pytest.mark.parametrize(
        ("make_signature", "payload"),
        [
            (lambda payload: None, body(event("product.updated", PRODUCT))),
            (
                lambda payload: signature(payload, "whsec_wrongSecret0000000000000000000"),
                body(event("product.updated", PRODUCT)),
            ),
            (
                lambda payload: signature(payload, timestamp=int(time.time()) - 301),
                body(event("product.updated", PRODUCT)),
            ),
            (lambda payload: "t=123,v1=nothex", body(event("product.updated", PRODUCT))),
            (lambda payload: signature(payload), b"{not json"),
            (lambda payload: signature(payload), body({"hello": "world"})),
            (lambda payload: signature(payload), body([1, 2, 3])),
            (lambda payload: signature(payload), body({**event("x.y", PRODUCT), "id": "not-an-event-id"})),
            (lambda payload: signature(payload), b"\xff\xfe not utf-8"),
        ],
        ids=[
            "no-signature",
            "wrong-secret",
            "expired",
            "garbage-signature",
            "not-json",
            "not-an-event",
            "a-list",
            "bad-id",
            "not-utf8",
        ],
    )
    def test_400_says_nothing_and_stores_nothing(self, client, make_signature, payload):
        response = post(client, payload, make_signature(payload))

        assert response.status_code == 400
        assert response.json() == {"error": "invalid webhook"}
        assert not WebhookEvent.objects.exists()
        assert not djstripe_models.Event.objects.exists()

    @pytest.mark.parametrize("debug", [False, True])
    def test_no_request_header_can_stand_in_for_the_secret(self, client, settings, debug):
        settings.DEBUG = debug
        payload = body(event("product.updated", PRODUCT))

        response = post(
            client,
            payload,
            signature(payload, "whsec_attackerSecret000000000000000"),
            HTTP_X_DJSTRIPE_WEBHOOK_SECRET="whsec_attackerSecret000000000000000",
        )

        assert response.status_code == 400
        assert not WebhookEvent.objects.exists()

    def test_without_a_configured_secret_everything_is_refused(self, client, settings):
        settings.STRIPE_WEBHOOK_SECRETS = []
        payload = body(event("product.updated", PRODUCT))

        assert post(client, payload, signature(payload)).status_code == 400

    def test_only_post(self, client):
        assert client.get(URL).status_code == 405


@pytest.fixture
def no_worker_busy_at_the_flush():
    """A stored event is queued for the session's worker, if one runs: the database is emptied after each
    test, never while that worker is processing the event (the two would deadlock)."""
    yield
    celery_app.control.purge()
    wait_until(worker_idle, timeout=60, message="the worker to finish its tasks")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_worker_busy_at_the_flush")
def test_concurrent_deliveries_of_one_event_store_it_once(live_server, settings):
    payload = body(event("product.updated", PRODUCT, event_id="evt_concurrent"))
    headers = {"Stripe-Signature": signature(payload), "Content-Type": "application/json"}
    barrier = threading.Barrier(8)
    answers: list[dict] = []

    def deliver():
        barrier.wait()
        answers.append(requests.post(f"{live_server.url}{URL}", data=payload, headers=headers, timeout=10).json())

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(a["duplicate"] for a in answers) == [False] + [True] * 7
    stored = WebhookEvent.objects.get(stripe_id="evt_concurrent")
    assert stored.deliveries == 8
    assert djstripe_models.Event.objects.filter(id="evt_concurrent").count() == 1


class _CountingInput:
    """A request body that counts what the application reads of it (gunicorn's would be a socket)."""

    def __init__(self, payload: bytes):
        self._stream = io.BytesIO(payload)
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self.bytes_read += len(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:
        line = self._stream.readline(size)
        self.bytes_read += len(line)
        return line


def _wsgi(method: str, path: str, payload: bytes = b"", sig: str | None = None, **environ_overrides):
    """Call the deployed WSGI application (config.wsgi) the way gunicorn does."""
    from config.wsgi import application

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http",
        "wsgi.input": _CountingInput(payload),
        "CONTENT_LENGTH": str(len(payload)),
        "CONTENT_TYPE": "application/json",
        **environ_overrides,
    }
    if sig is not None:
        environ["HTTP_STRIPE_SIGNATURE"] = sig
    answer = {}

    def start_response(status, headers):
        answer["status"], answer["headers"] = status, dict(headers)

    answer_body = application(environ, start_response)
    try:
        content = b"".join(answer_body)
    finally:
        if hasattr(answer_body, "close"):
            answer_body.close()  # what every WSGI server does once the answer is sent (PEP 3333)
    return answer["status"], answer["headers"], content


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_worker_busy_at_the_flush")
class TestDeployedWsgiPath:
    """gunicorn serves /stripe/webhook/ outside Django's middleware: the same answers, the same storage."""

    def test_stores_once_and_answers_like_the_view(self):
        payload = body(event("product.updated", PRODUCT, event_id="evt_wsgi"))

        first = _wsgi("POST", URL, payload, signature(payload))
        again = _wsgi("POST", URL, payload, signature(payload))

        assert first[0] == "200 OK"
        assert first[1]["Content-Type"] == "application/json"
        assert [json.loads(answer[2])["duplicate"] for answer in (first, again)] == [False, True]
        assert WebhookEvent.objects.get(stripe_id="evt_wsgi").deliveries == 2
        assert djstripe_models.Event.objects.filter(id="evt_wsgi").exists()

    def test_bad_input_and_other_methods(self):
        payload = body(event("product.updated", PRODUCT))

        refused = _wsgi("POST", URL, payload, signature(payload, "whsec_wrongSecret0000000000000000000"))
        not_post = _wsgi("GET", URL)

        assert (refused[0], json.loads(refused[2])) == ("400 Bad Request", {"error": "invalid webhook"})
        assert (not_post[0], not_post[1]["Allow"]) == ("405 Method Not Allowed", "POST")
        assert not WebhookEvent.objects.exists()

    def test_every_other_path_is_django(self):
        status, _, content = _wsgi("GET", "/health/")

        assert status.startswith("200")
        assert json.loads(content)["status"] == "ok"

    def test_a_body_above_the_limit_is_413_before_a_byte_is_read(self, settings):
        settings.STRIPE_WEBHOOK_MAX_BYTES = 256 * 1024
        stream = _CountingInput(b"x" * 1024)
        declared = str(300 * 1024 * 1024)  # what a 300 MiB POST declares; the bytes would follow on the socket

        status, _, content = _wsgi("POST", URL, **{"wsgi.input": stream, "CONTENT_LENGTH": declared})

        assert status == "413 Content Too Large"
        assert json.loads(content) == {"error": "body larger than 262144 bytes"}
        assert stream.bytes_read == 0
        assert not WebhookEvent.objects.exists()

    def test_a_content_length_of_thousands_of_digits_is_413_not_a_crash(self):
        status, _, _ = _wsgi("POST", URL, **{"wsgi.input": _CountingInput(b"{}"), "CONTENT_LENGTH": "9" * 5000})

        assert status == "413 Content Too Large"

    @pytest.mark.parametrize("declared", ["abc", "-5", "1e6", "12 34", "\u0661\u0662"])
    def test_a_content_length_that_is_not_a_number_is_400(self, declared):
        stream = _CountingInput(b"{}")

        status, _, content = _wsgi("POST", URL, **{"wsgi.input": stream, "CONTENT_LENGTH": declared})

        assert status == "400 Bad Request"
        assert json.loads(content) == {"error": "Content-Length is not a number"}
        assert stream.bytes_read == 0

    def test_a_genuine_event_at_the_limit_is_still_taken(self, settings):
        payload = body(event("product.updated", PRODUCT, event_id="evt_at_limit"))
        settings.STRIPE_WEBHOOK_MAX_BYTES = len(payload)

        status, _, _ = _wsgi("POST", URL, payload, signature(payload))

        assert status == "200 OK"
        assert WebhookEvent.objects.filter(stripe_id="evt_at_limit").exists()

    def test_by_default_a_genuine_event_of_256_kib_is_taken_and_one_byte_more_is_413(self):
        """The limit left as deployed (`STRIPE_WEBHOOK_MAX_BYTES` unset): 256 KiB, far above any Stripe event."""

        def padded_to(size: int, event_id: str) -> bytes:
            unpadded = len(body(event("product.updated", {**PRODUCT, "description": ""}, event_id=event_id)))
            padding = {**PRODUCT, "description": "x" * (size - unpadded)}
            payload = body(event("product.updated", padding, event_id=event_id))
            assert len(payload) == size
            return payload

        at_limit = padded_to(256 * 1024, "evt_default_limit")
        above = padded_to(256 * 1024 + 1, "evt_above_default_limit")

        taken = _wsgi("POST", URL, at_limit, signature(at_limit))
        refused = _wsgi("POST", URL, above, signature(above))

        assert taken[0] == "200 OK"
        assert (refused[0], json.loads(refused[2])) == (
            "413 Content Too Large",
            {"error": "body larger than 262144 bytes"},
        )
        assert list(WebhookEvent.objects.values_list("stripe_id", flat=True)) == ["evt_default_limit"]


@pytest.fixture
def kept_connection():
    """The database connection kept between requests, as deployed (`CONN_MAX_AGE`; the tests' own is 0)."""
    from django.db import connection

    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = 60
    yield connection
    connection.settings_dict["CONN_MAX_AGE"] = 0
    connection.close()


@pytest.fixture
def statements_sent(kept_connection):
    """Every statement sent to PostgreSQL on the kept connection, Django's own `SELECT 1` health check included
    (which Django's query log does not see)."""
    from unittest.mock import patch

    sent: list[str] = []
    kept_connection.ensure_connection()
    cursor_class = kept_connection.connection.cursor_factory
    execute = cursor_class.execute

    def counted(self, query, *args, **kwargs):
        sent.append(str(query).strip()[:40])
        return execute(self, query, *args, **kwargs)

    with patch.object(cursor_class, "execute", counted):
        yield sent


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_worker_busy_at_the_flush")
class TestOneRoundTripADelivery:
    """Each delivery is one statement to PostgreSQL, and Stripe's answer waits for nothing else: no health check
    before it (the statement is its own), no drain woken in Redis before the answer is sent."""

    def test_a_delivery_on_a_kept_connection_sends_one_statement(self, statements_sent):
        first, second = (body(event("product.updated", PRODUCT, event_id=f"evt_kept_{n}")) for n in range(2))
        _wsgi("POST", URL, first, signature(first))
        statements_sent.clear()

        status, _, _ = _wsgi("POST", URL, second, signature(second))

        assert status == "200 OK"
        assert len(statements_sent) == 1, statements_sent
        assert statements_sent[0].startswith("WITH doc AS")

    def test_a_kept_connection_that_died_while_idle_costs_the_delivery_nothing(self, kept_connection):
        import psycopg

        first, second = (body(event("product.updated", PRODUCT, event_id=f"evt_dead_{n}")) for n in range(2))
        _wsgi("POST", URL, first, signature(first))
        backend = kept_connection.connection.info.backend_pid
        with psycopg.connect(dbname=kept_connection.settings_dict["NAME"], autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [backend])

        status, _, content = _wsgi("POST", URL, second, signature(second))

        assert (status, json.loads(content)) == ("200 OK", {"received": True, "duplicate": False})
        assert kept_connection.connection.info.backend_pid != backend
        assert WebhookEvent.objects.filter(stripe_id="evt_dead_1", deliveries=1).count() == 1
        assert djstripe_models.Event.objects.filter(id="evt_dead_1").exists()

    def test_the_drain_is_woken_once_the_answer_is_sent(self, settings, queued_tasks):
        from config.wsgi import application

        settings.COORDINATION_REDIS_URL = ""  # no drain slots: every new event wakes a drain
        new, again = (body(event("product.updated", PRODUCT, event_id="evt_woken")) for _ in range(2))
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": URL, "CONTENT_LENGTH": str(len(new))}

        answer = application(
            {**environ, "wsgi.input": io.BytesIO(new), "HTTP_STRIPE_SIGNATURE": signature(new)}, lambda *_: None
        )
        sent = b"".join(answer)
        woken_before_close = list(queued_tasks)
        answer.close()
        _wsgi("POST", URL, again, signature(again))  # a redelivery wakes nothing

        assert json.loads(sent) == {"received": True, "duplicate": False}
        assert woken_before_close == []
        assert [name for name, _, _ in queued_tasks] == ["apps.payments.tasks.drain_webhook_events_task"]


@pytest.mark.django_db
def test_the_django_view_refuses_a_large_body_too(client, settings):
    settings.STRIPE_WEBHOOK_MAX_BYTES = 1024
    payload = body(event("product.updated", {**PRODUCT, "description": "x" * 2048}))

    response = post(client, payload, signature(payload))

    assert response.status_code == 413
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_a_blank_secret_never_accepts_a_blank_signature(client, settings):
    """`STRIPE_WEBHOOK_SECRET="whsec_x, "` once left a blank secret; settings now refuse it, and so does verify."""
    settings.STRIPE_WEBHOOK_SECRETS = [SECRET, " ", ""]
    payload = body(event("product.updated", PRODUCT))

    for blank in (" ", ""):
        response = post(client, payload, signature(payload, blank))
        assert response.status_code == 400
    assert not WebhookEvent.objects.exists()
