"""Signals payments sends about orders and subscriptions. Each is sent once per transition, inside the
transaction that makes it and after the order is saved: a receiver (mail) reads the
order as it now is and records its work in the same transaction, queuing anything slow
with `task.apply_async_on_commit(...)` (`config.task_base`), which runs only once the transaction commits.
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

# Each subscription signal carries `news`, an `orders.subscriptions.SubscriptionNews`: the user, the plans,
# the amount and the invoice's link, as Stripe last told them. It is sent only for a subscription of one of
# our users, and may be sent again for the same cause: a receiver keys its work by that cause.

subscription_started = Signal()
"""A subscription is under way (trialing or active); sent each time its state is stored while it is."""

subscription_renewed = Signal()
"""A renewal (or a plan change) was invoiced and paid; `news.invoice_id` says which invoice."""

subscription_payment_failed = Signal()
"""An invoice could not be paid and is still open (Stripe retries it; the customer can pay it at
`news.invoice_url` with another card)."""

subscription_trial_ending = Signal()
"""A trial ends in three days (`news.trial_end`)."""

subscription_canceled = Signal()
"""A subscription ended (canceled, or its payment retries failed)."""
