"""The one door to Stripe: the client every call goes through, the shared rate budget, the circuit breaker,
and the error classes callers decide on. Imports nothing else of payments."""
