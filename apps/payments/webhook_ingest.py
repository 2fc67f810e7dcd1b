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
from django.db import transaction
from django.db.models import F
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from djstripe import models as djstripe_models

from apps.payments.models import WebhookEvent

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


@transaction.atomic
def webhook_receive(*, event: dict) -> bool:
    """Store the event unless it is stored already; True when it is new (and its processing is queued)."""
    record, created = WebhookEvent.objects.get_or_create(stripe_id=event["id"], defaults={"type": event["type"]})
    if not created:
        WebhookEvent.objects.filter(pk=record.pk).update(deliveries=F("deliveries") + 1)
        return False
    request = event.get("request") or {}
    djstripe_models.Event.objects.get_or_create(
        id=event["id"],
        defaults={
            "type": event["type"],
            "api_version": event.get("api_version") or "",
            "data": event["data"],
            "livemode": event.get("livemode"),
            "created": datetime.fromtimestamp(event["created"], tz=UTC),
            "request_id": (request.get("id") or "") if isinstance(request, dict) else "",
            "idempotency_key": (request.get("idempotency_key") or "") if isinstance(request, dict) else "",
            "stripe_data": event,
        },
    )
    transaction.on_commit(lambda: enqueue_event(record.pk), robust=True)
    return True


def enqueue_event(webhook_event_id: int, delay: float = 0) -> None:
    from apps.payments.tasks import process_webhook_event_task

    process_webhook_event_task.apply_async((webhook_event_id,), countdown=delay or None)


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
