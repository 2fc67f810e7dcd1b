"""Signing events the way Stripe does, for tests that play Stripe's part."""

import hashlib
import hmac
import json
import time

SECRET = "whsec_testSigningSecret0123456789abcdef"


def signature(payload: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event(event_type: str, obj: dict, *, event_id: str = "evt_test0001", created: int | None = None) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2026-08-26.dahlia",
        "created": created or int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def body(payload: dict) -> bytes:
    return json.dumps(payload, default=str).encode()  # the SDK's objects hold Decimals
