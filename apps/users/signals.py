"""Signals the users app sends. Sent by `users.services` inside the write's
transaction, after the write, so a receiver can record work in the same
transaction and queue a task for after the commit with `task.apply_async_on_commit(...)`
(`config.task_base`: nothing runs if the transaction rolls back, and a broker that is down is logged).
"""

from django.dispatch import Signal

user_registered = Signal()
"""A user signed up. Arguments: `user_id`."""

user_changed = Signal()
"""A user's profile changed. Arguments: `user_id`, `fields` (names of the changed fields)."""

user_deleted = Signal()
"""A user was deleted; the row is gone. Arguments: `user_id`, `email`."""

email_verification_requested = Signal()
"""A user should prove they own their address (they changed it, or asked for the link again).
Arguments: `user_id`, `request_id` (unique per request, so each request is one message)."""
