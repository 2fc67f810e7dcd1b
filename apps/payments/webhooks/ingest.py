"""`POST /stripe/webhook/`: verify, store once, answer at once. Processing happens in a task after commit.

Nothing here calls Stripe, and nothing a client sends can stand in for the signing
secret: the secrets come from settings only (dj-stripe's own view, which trusts an
`x-djstripe-webhook-secret` header in DEBUG and processes synchronously, is not routed).
"""

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import stripe
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.db.models import F
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from djstripe import models as djstripe_models

from apps.payments.webhooks.drain import schedule_drain, schedule_drain_on_commit
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from config import logs, metrics
from config import request_id as request_ids

log = logging.getLogger("apps.payments.webhooks")


class InvalidWebhook(Exception):
    """Not a genuine, well-formed Stripe event; the reason stays in our logs, not in the answer."""


def verify(payload: bytes, signature: str | None, secrets: list[str], tolerance: int) -> dict:
    """The event, if `signature` is Stripe's for `payload` under one of `secrets` and recent enough."""
    secrets = [secret for secret in secrets if secret.strip()]  # a blank secret would accept a blank signature
    if not signature or not secrets:
        raise InvalidWebhook("no signature" if secrets else "no webhook secret configured")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidWebhook("body is not UTF-8") from error
    for secret in secrets:  # more than one while a secret is being rolled over
        try:
            stripe.WebhookSignature.verify_header(text, signature, secret, tolerance)
            break
        except stripe.SignatureVerificationError:
            continue
    else:
        raise InvalidWebhook("signature does not match or is too old")
    try:
        event = json.loads(text)
    except ValueError as error:
        raise InvalidWebhook("body is not JSON") from error
    if not _is_event(event):
        raise InvalidWebhook("JSON is not a Stripe event")
    return event


def _is_event(event) -> bool:
    return (
        isinstance(event, dict)
        and event.get("object") == "event"
        and isinstance(event.get("id"), str)
        and event["id"].startswith("evt_")
        and isinstance(event.get("type"), str)
        and isinstance(event.get("created"), int)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    )


def _raw_event_fields(event: dict) -> dict:
    """dj-stripe's `Event` columns for the event, filled without asking Stripe for anything."""
    request = event.get("request") if isinstance(event.get("request"), dict) else {}
    return {
        "id": event["id"],
        "type": event["type"],
        "api_version": event.get("api_version") or "",
        "data": event["data"],
        "livemode": event.get("livemode"),
        "created": datetime.fromtimestamp(event["created"], tz=UTC),
        "request_id": request.get("id") or "",
        "idempotency_key": request.get("idempotency_key") or "",
        "stripe_data": event,
    }


def without_client_secret(event: dict) -> dict:
    """The event with its object's client secret blanked wherever it appears (Stripe also writes it into a
    3D Secure URL): whoever holds it can pay or read the intent, so it is kept nowhere here."""
    secret = event["data"]["object"].get("client_secret")
    if not isinstance(secret, str) or not secret:
        return event
    return json.loads(json.dumps(event).replace(secret, "[redacted]"))


def webhook_receive(*, event: dict, wake_drain: Callable[[], None] = schedule_drain_on_commit) -> bool:
    """Store the event unless it is stored already; True when it is new (and `wake_drain` was called for it)."""
    store = _store_postgresql if connection.vendor == "postgresql" else _store_portable
    _, new = store(without_client_secret(event))
    if new:
        wake_drain()  # a broker that is down must not fail the acknowledgement
    return new


@transaction.atomic
def _store_portable(event: dict) -> tuple[int, bool]:
    record, created = WebhookEvent.objects.get_or_create(stripe_id=event["id"], defaults={"type": event["type"]})
    if not created:
        WebhookEvent.objects.filter(pk=record.pk).update(deliveries=F("deliveries") + 1)
        return record.pk, False
    fields = _raw_event_fields(event)
    djstripe_models.Event.objects.get_or_create(id=fields.pop("id"), defaults=fields)
    return record.pk, True


def _store_postgresql(event: dict) -> tuple[int, bool]:
    """Both rows in one statement (one round trip, atomic by itself): this is the hot path of every delivery."""
    now = timezone.now()
    fields = {**_raw_event_fields(event), "djstripe_created": now, "djstripe_updated": now}
    # The event's JSON is parsed once; the raw row's `data` is taken from it.
    computed = {"stripe_data": "doc.event", "data": "doc.event -> 'data'", "metadata": "NULL"}
    plain = [column for column in fields if column not in computed]
    columns = [*plain, *computed]
    expressions = ["%s"] * len(plain) + list(computed.values())
    ours_table, raw_table = WebhookEvent._meta.db_table, djstripe_models.Event._meta.db_table
    sql = f"""
        WITH doc AS (SELECT %s::jsonb AS event),
        ours AS (
            INSERT INTO {ours_table}
                (stripe_id, type, state, deliveries, attempts, outcome, last_error, traceback, received_at)
            VALUES (%s, %s, %s, 1, 0, '', '', '', %s)
            ON CONFLICT (stripe_id) DO UPDATE SET deliveries = {ours_table}.deliveries + 1
            RETURNING id, (xmax = 0) AS inserted
        ), raw AS (
            INSERT INTO {raw_table} ({", ".join(f'"{column}"' for column in columns)})
            SELECT {", ".join(expressions)} FROM doc WHERE EXISTS (SELECT 1 FROM ours WHERE inserted)
            ON CONFLICT (id) DO NOTHING
        )
        SELECT id, inserted FROM ours
    """  # noqa: S608 - table and column names come from the models, values are parameters
    parameters = [
        json.dumps(event),
        event["id"],
        event["type"],
        WebhookEventState.RECEIVED,
        now,
        *(fields[column] for column in plain),
    ]
    kept = connection.connection is not None and not connection.in_atomic_block
    try:
        return _first_row(sql, parameters)
    except (OperationalError, InterfaceError):
        if not kept:
            raise
    # A connection kept from an earlier delivery died while idle (a database restart, a pooler or a firewall that
    # closed it): run the statement once more on a new one. Being one statement, it ran whole or not at all, and
    # again it stores the event once; had it run, this delivery is counted twice and answered as a duplicate (the
    # beat wakes a drain for the event, as when the broker is down).
    connection.close()
    return _first_row(sql, parameters)


def _first_row(sql: str, parameters: list) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, parameters)
        return cursor.fetchone()


def acknowledge(
    payload: bytes, signature: str | None, wake_drain: Callable[[], None] = schedule_drain_on_commit
) -> tuple[int, dict]:
    """Verify and store one delivery: the HTTP status and JSON body to answer with."""
    try:
        event = verify(payload, signature, settings.STRIPE_WEBHOOK_SECRETS, settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS)
    except InvalidWebhook as error:
        log.warning("webhook refused reason=%s", error)
        metrics.WEBHOOKS_RECEIVED.labels("invalid").inc()
        return 400, {"error": "invalid webhook"}
    new = webhook_receive(event=event, wake_drain=wake_drain)
    metrics.WEBHOOKS_RECEIVED.labels("stored" if new else "duplicate").inc()
    return 200, {"received": True, "duplicate": not new}


def body_refusal(content_length: str | None) -> tuple[int, dict] | None:
    """The answer to a delivery whose declared size alone disqualifies it, before a byte of it is read:
    a body Stripe never sends would otherwise be held in memory whole before its signature is checked."""
    declared = (content_length or "0").strip()
    if not declared.isascii() or not declared.isdigit():
        refusal = 400, {"error": "Content-Length is not a number"}
    elif len(declared) > 15 or int(declared) > settings.STRIPE_WEBHOOK_MAX_BYTES:  # 16+ digits: never parsed
        refusal = 413, {"error": f"body larger than {settings.STRIPE_WEBHOOK_MAX_BYTES} bytes"}
    else:
        return None
    log.warning("webhook refused status=%s reason=%s", refusal[0], refusal[1]["error"])
    metrics.WEBHOOKS_RECEIVED.labels("too_large" if refusal[0] == 413 else "bad_request").inc()
    return refusal


@csrf_exempt
@require_POST
def stripe_webhook(request):
    refusal = body_refusal(request.META.get("CONTENT_LENGTH"))
    if refusal is not None:
        return JsonResponse(refusal[1], status=refusal[0])
    status, body = acknowledge(request.body, request.headers.get("Stripe-Signature"))
    return JsonResponse(body, status=status)


_REASONS = {200: "OK", 400: "Bad Request", 405: "Method Not Allowed", 413: "Content Too Large"}


def webhook_wsgi_app(environ, start_response):
    """The same endpoint as a bare WSGI application, which `config.wsgi` serves without Django's
    middleware and routing: a webhook needs no session, CSRF or auth, and every delivery is on the hot path."""
    close_old_connections()  # what Django does around each request, for persistent connections
    # The delivery's one statement checks its connection itself (`_store_postgresql` runs it again on a new one when
    # a kept one has died): Django's check (`CONN_HEALTH_CHECKS`, a `SELECT 1`) would be a second round trip.
    connection.health_check_done = True
    request_id = request_ids.begin(environ.get("HTTP_X_REQUEST_ID"))
    logs.begin_request(None)
    started = time.perf_counter()
    try:
        if environ["REQUEST_METHOD"] != "POST":
            status, body = 405, {"error": "POST only"}
        elif (refusal := body_refusal(environ.get("CONTENT_LENGTH"))) is not None:
            status, body = refusal
        else:
            payload = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            status, body = acknowledge(payload, environ.get("HTTP_STRIPE_SIGNATURE"), wake_drain=_after_the_answer)
    finally:
        close_old_connections()
    content = json.dumps(body).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(content))),
        (request_ids.HEADER, request_id),
    ]
    if status == 405:
        headers.append(("Allow", "POST"))
    start_response(f"{status} {_REASONS[status]}", headers)
    # The same series as the view's under Django (`stripe-webhook`), so a dashboard sees one endpoint either way.
    method = "POST" if status != 405 else "other"
    metrics.HTTP_REQUESTS.labels("stripe-webhook", method, f"{status // 100}xx").observe(time.perf_counter() - started)
    return _AnswerThenWakeDrain(content) if status == 200 and not body["duplicate"] else [content]


def _after_the_answer() -> None:
    """A new event's drain is woken by the answer itself (`_AnswerThenWakeDrain`), not before it is sent."""


class _AnswerThenWakeDrain:
    """The answer to a delivery of a new event, which wakes a drain once the server has sent it (PEP 3333: the
    server calls `close()` after the last byte): Stripe's answer does not wait on Redis. The event is committed
    already; a process that dies before `close()` leaves it to the beat, as a broker that is down does."""

    def __init__(self, content: bytes):
        self.content = content

    def __iter__(self):
        yield self.content

    def close(self) -> None:
        try:
            schedule_drain()
        except Exception:
            log.exception("no drain woken after the answer (the beat will wake one)")
