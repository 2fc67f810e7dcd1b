"""Where money moves: orders and their transitions, checkout and payment links, payment intents, refunds,
the client's Idempotency-Key on all of them, the events that move them, and the money check against Stripe."""
