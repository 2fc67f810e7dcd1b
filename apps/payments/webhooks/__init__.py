"""Stripe -> local: ingest (verify, store, answer at once), the drain that processes stored events, and the
one event-type -> handler table (the handlers live in the slice whose data they change). The top slice."""
