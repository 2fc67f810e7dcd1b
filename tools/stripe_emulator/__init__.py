"""An offline, stateful Stripe: `python -m tools.stripe_emulator`. Standard library only; no Django inside."""
