"""dj-stripe's `sync_from_stripe_data` stores every object the emulator answers, fetching what they refer to."""

import pytest
import stripe
from djstripe import models as djstripe_models

SYNCED = {
    "customer": djstripe_models.Customer,
    "product": djstripe_models.Product,
    "price": djstripe_models.Price,
    "checkout.session": djstripe_models.Session,
    "payment_intent": djstripe_models.PaymentIntent,
    "charge": djstripe_models.Charge,
    "refund": djstripe_models.Refund,
    "balance_transaction": djstripe_models.BalanceTransaction,
    "payment_method": djstripe_models.PaymentMethod,
    "event": djstripe_models.Event,
    "webhook_endpoint": djstripe_models.WebhookEndpoint,
    "account": djstripe_models.Account,
}


@pytest.fixture
def djstripe_on_emulator(emulator, settings, monkeypatch):
    """dj-stripe talks through the SDK's module settings: point them at the emulator for this test."""
    monkeypatch.setattr(stripe, "api_base", emulator.url)
    settings.STRIPE_SECRET_KEY = emulator.api_key
    return emulator


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(SYNCED))
def test_djstripe_stores_each_object(djstripe_on_emulator, every_object, kind):
    model = SYNCED[kind]
    stripe_object = every_object[kind]
    # Events arrive as JSON in webhooks; dj-stripe's Event reads `request` only from a plain dict.
    data = stripe_object.to_dict() if kind == "event" else stripe_object

    stored = model.sync_from_stripe_data(data)

    stored.refresh_from_db()
    assert stored.id == stripe_object.id
    assert model.objects.filter(id=stripe_object.id).count() == 1
    assert stored.stripe_data["object"] == kind


@pytest.mark.django_db
def test_synced_objects_are_linked(djstripe_on_emulator, every_object):
    charge = djstripe_models.Charge.sync_from_stripe_data(every_object["charge"])
    session = djstripe_models.Session.sync_from_stripe_data(every_object["checkout.session"])

    assert charge.customer.id == every_object["customer"].id
    assert charge.balance_transaction.id == every_object["balance_transaction"].id
    assert session.customer.id == every_object["customer"].id
    assert djstripe_models.Refund.objects.filter(charge=charge).count() == 1
    assert charge.djstripe_owner_account.id == every_object["account"].id
