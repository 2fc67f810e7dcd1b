"""The one door to Stripe: the client every call goes through, the shared rate budget, the circuit breaker,
the error classes callers decide on, and this installation's namespace in the Stripe account. The lowest
slice: it imports nothing else of payments."""
