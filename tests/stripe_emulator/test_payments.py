import pytest
import stripe


@pytest.fixture
def paid_intent(emulator, stripe_client):
    """A payment of 10.00 USD made through Checkout."""
    product = stripe_client.v1.products.create(
        params={"name": "Mug", "default_price_data": {"currency": "usd", "unit_amount": 1000}}
    )
    session = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [{"price": product.default_price, "quantity": 1}],
            "success_url": "https://x.example/",
        }
    )
    emulator.complete_checkout(session.id)
    return stripe_client.v1.payment_intents.retrieve(
        stripe_client.v1.checkout.sessions.retrieve(session.id).payment_intent
    )


class TestPaymentIntents:
    def test_create_and_confirm_with_a_test_card(self, stripe_client):
        intent = stripe_client.v1.payment_intents.create(
            params={"amount": 500, "currency": "usd", "metadata": {"k": "v"}}
        )

        confirmed = stripe_client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})

        assert intent.status == "requires_payment_method"
        assert (confirmed.status, confirmed.amount_received) == ("succeeded", 500)
        charge = stripe_client.v1.charges.retrieve(confirmed.latest_charge)
        assert (charge.paid, charge.amount, charge.payment_intent) == (True, 500, intent.id)

    def test_a_declined_card_is_a_402_card_error(self, stripe_client):
        intent = stripe_client.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})

        with pytest.raises(stripe.CardError) as error:
            stripe_client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_chargeDeclined"})

        assert (error.value.http_status, error.value.code) == (402, "card_declined")
        assert stripe_client.v1.payment_intents.retrieve(intent.id).last_payment_error.code == "card_declined"

    def test_cancel(self, stripe_client, paid_intent):
        fresh = stripe_client.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})

        canceled = stripe_client.v1.payment_intents.cancel(fresh.id)

        assert canceled.status == "canceled"
        with pytest.raises(stripe.InvalidRequestError):
            stripe_client.v1.payment_intents.cancel(paid_intent.id)

    @pytest.mark.parametrize(
        ("params", "param"),
        [
            ({"currency": "usd"}, "amount"),
            ({"amount": 0, "currency": "usd"}, "amount"),
            ({"amount": 5, "currency": "zzz"}, "currency"),
        ],
    )
    def test_bad_intents_are_refused(self, stripe_client, params, param):
        with pytest.raises(stripe.InvalidRequestError) as error:
            stripe_client.v1.payment_intents.create(params=params)

        assert error.value.param == param


class TestRefunds:
    def test_partial_then_the_rest(self, stripe_client, paid_intent):
        partial = stripe_client.v1.refunds.create(
            params={"payment_intent": paid_intent.id, "amount": 300, "reason": "requested_by_customer"}
        )
        rest = stripe_client.v1.refunds.create(params={"charge": paid_intent.latest_charge})

        charge = stripe_client.v1.charges.retrieve(paid_intent.latest_charge)
        assert (partial.amount, partial.status, rest.amount) == (300, "succeeded", 700)
        assert (charge.amount_refunded, charge.refunded) == (1000, True)
        assert [r.id for r in charge.refunds.data] == [rest.id, partial.id]
        listed = stripe_client.v1.refunds.list(params={"payment_intent": paid_intent.id})
        assert {r.id for r in listed.data} == {partial.id, rest.id}
        events = [e.type for e in stripe_client.v1.events.list(params={"limit": 4}).data]
        assert events == ["charge.refunded", "refund.created", "charge.refunded", "refund.created"]

    def test_never_above_what_is_left(self, stripe_client, paid_intent):
        stripe_client.v1.refunds.create(params={"payment_intent": paid_intent.id, "amount": 600})

        with pytest.raises(stripe.InvalidRequestError) as too_much:
            stripe_client.v1.refunds.create(params={"payment_intent": paid_intent.id, "amount": 401})
        stripe_client.v1.refunds.create(params={"payment_intent": paid_intent.id, "amount": 400})
        with pytest.raises(stripe.InvalidRequestError) as nothing_left:
            stripe_client.v1.refunds.create(params={"payment_intent": paid_intent.id, "amount": 1})

        assert (too_much.value.code, too_much.value.param) == ("amount_too_large", "amount")
        assert nothing_left.value.code == "charge_already_refunded"

    def test_an_unpaid_intent_cannot_be_refunded(self, stripe_client):
        intent = stripe_client.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})

        with pytest.raises(stripe.InvalidRequestError) as error:
            stripe_client.v1.refunds.create(params={"payment_intent": intent.id})

        assert error.value.code == "charge_not_refundable"

    def test_refund_metadata_update(self, stripe_client, paid_intent):
        refund = stripe_client.v1.refunds.create(params={"payment_intent": paid_intent.id})

        updated = stripe_client.v1.refunds.update(refund.id, params={"metadata": {"ticket": "42"}})

        assert updated.metadata.ticket == "42"


def test_balance_transactions_of_a_charge(stripe_client, paid_intent):
    charge = stripe_client.v1.charges.retrieve(paid_intent.latest_charge, params={"expand": ["balance_transaction"]})

    assert charge.balance_transaction.amount == 1000
    assert charge.balance_transaction.net == 1000 - charge.balance_transaction.fee
    assert charge.balance_transaction.source == charge.id


def test_charge_and_intent_updates_and_lists(stripe_client, paid_intent):
    charge = stripe_client.v1.charges.update(
        paid_intent.latest_charge, params={"metadata": {"order": "9"}, "description": "Mug"}
    )
    intent = stripe_client.v1.payment_intents.update(paid_intent.id, params={"metadata": {"order": "9"}})

    assert (charge.metadata.order, charge.description) == ("9", "Mug")
    assert intent.metadata.order == "9"
    assert [i.id for i in stripe_client.v1.payment_intents.list().data] == [paid_intent.id]
    assert [c.id for c in stripe_client.v1.charges.list(params={"payment_intent": paid_intent.id}).data] == [charge.id]
    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe_client.v1.charges.retrieve("ch_missing")
    assert error.value.code == "resource_missing"


def test_refund_retrieve(stripe_client, paid_intent):
    refund = stripe_client.v1.refunds.create(params={"payment_intent": paid_intent.id, "amount": 100})

    assert stripe_client.v1.refunds.retrieve(refund.id).amount == 100
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.refunds.retrieve("re_missing")
