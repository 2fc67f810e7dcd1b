import pytest


@pytest.fixture
def every_object(emulator, stripe_client):
    """One of each object type, made the way this project makes them."""
    client = stripe_client.v1
    customer = client.customers.create(params={"email": "ada@example.com", "metadata": {"app_ref": "users.user:1"}})
    product = client.products.create(
        params={"name": "Teapot", "default_price_data": {"currency": "usd", "unit_amount": 4500}}
    )
    price = client.prices.retrieve(product.default_price)
    session = client.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer": customer.id,
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "https://x.example/",
        }
    )
    emulator.complete_checkout(session.id)
    session = client.checkout.sessions.retrieve(session.id)
    intent = client.payment_intents.retrieve(session.payment_intent)
    charge = client.charges.retrieve(intent.latest_charge)
    refund = client.refunds.create(params={"charge": charge.id, "amount": 500})
    return {
        "customer": customer,
        "product": product,
        "price": price,
        "checkout.session": session,
        "item": client.checkout.sessions.line_items.list(session.id).data[0],
        "payment_link": client.payment_links.create(params={"line_items": [{"price": price.id, "quantity": 1}]}),
        "payment_intent": intent,
        "charge": client.charges.retrieve(charge.id),
        "refund": refund,
        "balance_transaction": client.balance_transactions.retrieve(charge.balance_transaction),
        "payment_method": client.payment_methods.retrieve(charge.payment_method),
        "event": client.events.list(params={"limit": 1}).data[0],
        "webhook_endpoint": client.webhook_endpoints.retrieve(
            client.webhook_endpoints.create(params={"url": "https://x.example/hook", "enabled_events": ["*"]}).id
        ),
        "account": client.accounts.retrieve_current(),
    }
