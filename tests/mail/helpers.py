"""Helpers of the mail tests."""

from apps.payments import services as payments
from apps.payments.models import OrderStatus


def paid_order(*, user, lines):
    """An order paid through the one transition function, as a webhook would pay it."""
    order = payments.order_create(user=user, lines=lines)
    payments.order_transition(order_id=order.pk, to=OrderStatus.PAID, cause="test", payment_intent_id="pi_test")
    order.refresh_from_db()
    return order
