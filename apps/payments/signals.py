"""Signals payments sends about orders. Each is sent once per transition, inside the
transaction that makes it and after the order is saved: a receiver (mail) reads the
order as it now is and records its work in the same transaction, scheduling anything
slow with `transaction.on_commit`.
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
"""Money went back to the customer. Arguments: `order_id`, `amount` (this refund, minor units),
`refund_id` (the `OrderRefund`)."""
