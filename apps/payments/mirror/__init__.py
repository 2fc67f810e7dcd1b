"""Local -> Stripe: the outbox of changes, the lease engine that pushes them, one spec per mirrored kind,
the reconciler that compares the two sides, and the catalog events that bring dashboard edits back."""
