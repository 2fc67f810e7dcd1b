"""Local -> Stripe: the outbox of changes, the lease engine that pushes them, one spec per mirrored kind,
and the reconciler that compares the two sides."""
