"""`POST /stripe/webhook/`: verify, store once, answer at once. Processing happens in a task after commit.

Nothing here calls Stripe, and nothing a client sends can stand in for the signing
secret: the secrets come from settings only (dj-stripe's own view, which trusts an
`x-djstripe-webhook-secret` header in DEBUG and processes synchronously, is not routed).
"""

import json
import logging
from datetime import UTC, datetime

import stripe
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from djstripe import models as djstripe_models

from apps.payments.models import WebhookEvent, WebhookEventState
from apps.payments.webhook_drain import schedule_drain

log = logging.getLogger("apps.payments.webhooks")


class InvalidWebhook(Exception):
    """Not a genuine, well-formed Stripe event; the reason stays in our logs, not in the answer."""


def verify(payload: bytes, signature: str | None, secrets: list[str], tolerance: int) -> dict:
    """The event, if `signature` is Stripe's for `payload` under one of `secrets` and recent enough."""
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


def webhook_receive(*, event: dict) -> bool:
    """Store the event unless it is stored already; True when it is new (and its processing is queued)."""
    store = _store_postgresql if connection.vendor == "postgresql" else _store_portable
    _, new = store(event)
    if new:
        # robust: a broker that is down must not fail the acknowledgement; beat wakes a drain later.
        transaction.on_commit(schedule_drain, robust=True)
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
    fields = {**_raw_event_fields(event), "djstripe_created": now, "djstripe_updated": now, "metadata": None}
    raw_table = djstripe_models.Event._meta.db_table
    columns = list(fields)
    placeholders = ", ".join(
        "%s::jsonb" if column in ("data", "stripe_data", "metadata") else "%s" for column in columns
    )
    sql = f"""
        WITH ours AS (
            INSERT INTO {WebhookEvent._meta.db_table}
                (stripe_id, type, state, deliveries, attempts, outcome, last_error, traceback, received_at)
            VALUES (%s, %s, %s, 1, 0, '', '', '', %s)
            ON CONFLICT (stripe_id) DO UPDATE SET deliveries = {WebhookEvent._meta.db_table}.deliveries + 1
            RETURNING id, (xmax = 0) AS inserted
        ), raw AS (
            INSERT INTO {raw_table} ({", ".join(f'"{column}"' for column in columns)})
            SELECT {placeholders} WHERE EXISTS (SELECT 1 FROM ours WHERE inserted)
            ON CONFLICT (id) DO NOTHING
        )
        SELECT id, inserted FROM ours
    """  # noqa: S608 - table and column names come from the models, values are parameters
    values = [json.dumps(value) if column in ("data", "stripe_data") else value for column, value in fields.items()]
    with connection.cursor() as cursor:
        cursor.execute(sql, [event["id"], event["type"], WebhookEventState.RECEIVED, now, *values])
        record_id, inserted = cursor.fetchone()
    return record_id, inserted


@csrf_exempt
@require_POST
def stripe_webhook(request):
    try:
        event = verify(
            request.body,
            request.headers.get("Stripe-Signature"),
            settings.STRIPE_WEBHOOK_SECRETS,
            settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
        )
    except InvalidWebhook as error:
        log.warning("webhook refused reason=%s", error)
        return JsonResponse({"error": "invalid webhook"}, status=400)
    new = webhook_receive(event=event)
    return JsonResponse({"received": True, "duplicate": not new})
