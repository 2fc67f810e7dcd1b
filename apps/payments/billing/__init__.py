"""Plans: the Checkout Sessions that sell them, subscriptions and invoices kept as Stripe holds them, changes
a user makes, the customer portal, and the events about them."""
