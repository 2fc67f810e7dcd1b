"""The orders' locks, and the order they are taken in, in one place.

- A user's row, while a checkout or an intent decides which order a cart is (`user_lock`): a double click
  waits for its twin and finds the order it made.
- An order's row, then its payments' (`order_lock`, then `Payment ... select_for_update()`): every path
  that touches both takes them in this order, so a late event about a payment and a refund of its order
  wait for each other instead of deadlocking.

Each lock lives only inside a short transaction that makes no Stripe call: Stripe is asked before the lock
is taken, or after it is given back.
"""

from apps.payments.orders.models import Order
from apps.users.models import User


def user_lock(user_id: int) -> None:
    """Take the user's row lock until the current transaction ends."""
    User.objects.select_for_update().filter(pk=user_id).first()


def order_lock(order_id: int) -> Order:
    """Take the order's row lock until the current transaction ends; the order as it now is."""
    return Order.objects.select_for_update().get(pk=order_id)
