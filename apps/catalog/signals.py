"""Signals the catalog sends. Sent by `catalog.services` inside the write's
transaction, after the write, so a receiver can record work in the same
transaction and queue a task for after the commit with `task.apply_async_on_commit(...)`
(`config.task_base`: nothing runs if the transaction rolls back, and a broker that is down is logged).
"""

from django.dispatch import Signal

product_changed = Signal()
"""A product was created or changed. Arguments: `product_id`, `created` (bool), `fields` (changed field names)."""

product_deleted = Signal()
"""A product was withdrawn from sale (archived; the row stays for order history). Arguments: `product_id`."""

price_changed = Signal()
"""A price was created or changed. Arguments: `price_id`, `product_id`, `created` (bool), `fields`."""

price_deleted = Signal()
"""A price was withdrawn from sale (archived). Arguments: `price_id`, `product_id`."""
