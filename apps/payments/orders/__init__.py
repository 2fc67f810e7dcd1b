"""Where money moves: orders and their transitions, checkout and payment links, the order's Checkout
Session, refunds, and the client's Idempotency-Key on all of them."""
