"""Helpers of the mail tests."""

import uuid
from datetime import timedelta

from django.utils import timezone

from apps.mail.models import MessageKind, OutgoingMessage
from apps.payments.orders.lifecycle import order_create, order_transition
from apps.payments.orders.models import OrderStatus


def paid_order(*, user, lines):
    """An order paid through the one transition function, as a webhook would pay it."""
    order = order_create(user=user, lines=lines)
    order_transition(order_id=order.pk, to=OrderStatus.PAID, cause="test", payment_intent_id="pi_test")
    order.refresh_from_db()
    return order


def outgoing(*, created_ago: timedelta = timedelta(0), **fields) -> OutgoingMessage:
    """A row as `message_queue` writes it, without a template behind it; `created_ago` backdates it."""
    token = uuid.uuid4().hex
    row = {
        "idempotency_key": f"test:{token}",
        "kind": MessageKind.WELCOME,
        "recipient": "ada@example.com",
        "subject": "Welcome",
        "body_text": "Hello\n",
        "body_html": "<p>Hello</p>",
        "message_id": f"<{token}@example.com>",
    }
    message = OutgoingMessage.objects.create(**{**row, **fields})
    if created_ago:
        OutgoingMessage.objects.filter(pk=message.pk).update(created_at=timezone.now() - created_ago)
    return message
