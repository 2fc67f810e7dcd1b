"""Helpers of the payment tests: waiting for the mirror and the webhooks, buying from the shop."""

from contextlib import contextmanager

import stripe
from django.conf import settings as django_settings
from kombu import pools

from apps.payments.mirror.models import MirrorRecord, MirrorState
from apps.payments.orders.models import Order, OrderStatus
from config.celery import app as celery_app
from tests.helpers import client_for
from tests.worker_fixtures import wait_until

__all__ = [
    "broker_unreachable",
    "checkout_cart",
    "checkout_started",
    "events_settled",
    "order_settles",
    "settled",
    "stripe_objects_by_ref",
    "wait_until",
    "webhooks_quiet",
]

PASSWORD = "a-long-unusual-passphrase-42"
CHECKOUT = "/api/v1/checkout/sessions"
URLS = {"success_url": "https://shop.example/thanks", "cancel_url": "https://shop.example/cart"}


def settled() -> bool:
    """True once no mirror row is pending (each is synced or failed)."""
    return not MirrorRecord.objects.filter(state=MirrorState.PENDING).exists()


@contextmanager
def broker_unreachable():
    """Messages sent meanwhile go nowhere, as when the broker is down at commit time."""
    real = celery_app.conf.broker_url

    def reconnect(url: str) -> None:
        celery_app.conf.broker_url = url
        # Kombu keeps pools per connection in a registry of its own; drop them all.
        pools.reset()
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    reconnect("redis://127.0.0.1:1/0")
    try:
        yield
    finally:
        reconnect(real)


def stripe_objects_by_ref(emulator, resource: str) -> dict[str, list[str]]:
    """Stripe's side: ids of each `app_ref` of this installation, to count duplicates."""
    client = stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url})
    service = getattr(client.v1, resource)
    found: dict[str, list[str]] = {}
    for obj in service.list(params={"limit": 100}).auto_paging_iter():
        if getattr(obj, "deleted", False):
            continue
        ref = (obj.metadata or {}).get("app_ref")
        if ref and (obj.metadata or {}).get("app_namespace") == django_settings.STRIPE_APP_NAMESPACE:
            found.setdefault(ref, []).append(obj.id)
    return found


def events_settled() -> bool:
    """Stripe delivered everything and every stored event is processed, ignored or failed."""
    from apps.payments.webhooks.models import WebhookEvent, WebhookEventState

    return not WebhookEvent.objects.filter(state=WebhookEventState.RECEIVED).exists()


# --- buying from the shop (tests.payments.fixtures): checkout helpers shared by payments and mail ---


def checkout_cart(client, lines, key: str | None = None, **urls):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(CHECKOUT, {"lines": lines, **URLS, **urls}, format="json", **headers)


def order_settles(order_id: int, status: str, timeout: float = 30) -> Order:
    return wait_until(
        lambda: Order.objects.filter(pk=order_id, status=status).first(), timeout=timeout, message=f"order {status}"
    )


def webhooks_quiet(emulator) -> None:
    assert emulator.wait_for_webhooks(20)
    wait_until(events_settled, message="event processing")


def checkout_started(shop, quantity: int = 2):
    client = client_for(shop["customer"])
    answer = checkout_cart(
        client, [{"price": shop["teapot"].pk, "quantity": quantity}, {"price": shop["cup"].pk, "quantity": 1}]
    )
    assert answer.status_code == 201, answer.content
    return client, answer.json()


def paid_by_checkout(shop) -> Order:
    """An order the customer paid on Stripe's page, with every webhook it caused processed."""
    _, started = checkout_started(shop)
    shop["emulator"].complete_checkout(started["session_id"], "paid")
    order = order_settles(started["order"], OrderStatus.PAID)
    webhooks_quiet(shop["emulator"])
    return order
