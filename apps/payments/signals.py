"""Signals payments sends about orders. Each is sent once per transition, after the
transaction that made it commits, so a receiver (mail) sees the order as it is stored.
"""

from django.dispatch import Signal

order_paid = Signal()
"""The order is paid. Arguments: `order_id`."""

payment_failed = Signal()
"""A payment for the order failed; the customer may try again. Arguments: `order_id`."""

order_expired = Signal()
"""The order's checkout expired unpaid. Arguments: `order_id`."""

order_canceled = Signal()
"""The order was canceled before it was paid. Arguments: `order_id`."""

order_refunded = Signal()
"""Money went back to the customer. Arguments: `order_id`, `amount` (this refund, minor units)."""
