"""The events Stripe sends as an app's Payment Intent is paid, waits for 3D Secure or is canceled: what a
webhook endpoint learns of each step, in the order the steps happened."""

import pytest
import stripe


def _sent(stripe_client) -> list[tuple[str, str, str]]:
    """(type, object id, object status) of every event so far, the oldest first."""
    events = stripe_client.v1.events.list(params={"limit": 100}).data
    return [(event.type, event.data.object.id, event.data.object.status) for event in reversed(events)]


def test_confirming_with_a_card_sends_the_charge_and_the_intent_succeeded(stripe_client):
    intent = stripe_client.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})

    paid = stripe_client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})

    assert _sent(stripe_client) == [
        ("payment_intent.created", intent.id, "requires_payment_method"),
        ("charge.succeeded", paid.latest_charge, "succeeded"),
        ("payment_intent.succeeded", intent.id, "succeeded"),
    ]
    succeeded = stripe_client.v1.events.list(params={"type": "payment_intent.succeeded"}).data[0].data.object
    assert (succeeded.amount_received, succeeded.latest_charge) == (500, paid.latest_charge)
    charge = stripe_client.v1.events.list(params={"type": "charge.succeeded"}).data[0].data.object
    assert (charge.payment_intent, charge.amount, charge.paid) == (intent.id, 500, True)


def test_a_card_passing_3d_secure_sends_requires_action_then_succeeded(emulator, stripe_client):
    intent = stripe_client.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})
    stripe_client.v1.payment_intents.confirm(
        intent.id, params={"payment_method": "pm_card_authenticationRequired", "return_url": "https://x.example/"}
    )

    emulator.control("POST", f"payment_intents/{intent.id}/authenticate", {"outcome": "complete"})

    paid = stripe_client.v1.payment_intents.retrieve(intent.id)
    assert _sent(stripe_client) == [
        ("payment_intent.created", intent.id, "requires_payment_method"),
        ("payment_intent.requires_action", intent.id, "requires_action"),
        ("charge.succeeded", paid.latest_charge, "succeeded"),
        ("payment_intent.succeeded", intent.id, "succeeded"),
    ]


@pytest.mark.parametrize("reason", ["requested_by_customer", "abandoned"])
def test_a_cancel_sends_payment_intent_canceled_with_its_reason(stripe_client, reason):
    intent = stripe_client.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})

    stripe_client.v1.payment_intents.cancel(intent.id, params={"cancellation_reason": reason})

    assert _sent(stripe_client) == [
        ("payment_intent.created", intent.id, "requires_payment_method"),
        ("payment_intent.canceled", intent.id, "canceled"),
    ]
    canceled = stripe_client.v1.events.list(params={"type": "payment_intent.canceled"}).data[0].data.object
    assert canceled.cancellation_reason == reason
    assert canceled.canceled_at is not None


def test_a_refused_cancel_sends_nothing(stripe_client):
    intent = stripe_client.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})
    stripe_client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})
    before = _sent(stripe_client)

    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.payment_intents.cancel(intent.id)

    assert _sent(stripe_client) == before
