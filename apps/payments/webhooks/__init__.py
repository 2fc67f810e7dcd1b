"""Stripe -> local: ingest (verify, store, answer at once), the drain that processes stored events, the
processing loop with its one event-type -> handler table, and the handlers for catalog and order events."""
