"""Helpers of the mail tests."""

from apps.payments.orders.lifecycle import order_create, order_transition
from apps.payments.orders.models import OrderStatus


def paid_order(*, user, lines):
    """An order paid through the one transition function, as a webhook would pay it."""
    order = order_create(user=user, lines=lines)
    order_transition(order_id=order.pk, to=OrderStatus.PAID, cause="test", payment_intent_id="pi_test")
    order.refresh_from_db()
    return order
