import re

import pytest
import requests
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

    @pytest.mark.parametrize(
        ("card", "decline_code", "message"),
        [
            ("pm_card_chargeDeclined", "generic_decline", "Your card was declined."),
            ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", "Your card has insufficient funds."),
        ],
    )
    def test_a_decline_says_why_on_the_intent_the_charge_and_the_event(
        self, stripe_client, card, decline_code, message
    ):
        intent = stripe_client.v1.payment_intents.create(params={"amount": 700, "currency": "eur"})

        with pytest.raises(stripe.CardError) as error:
            stripe_client.v1.payment_intents.confirm(intent.id, params={"payment_method": card})

        assert (error.value.code, error.value.json_body["error"]["decline_code"]) == ("card_declined", decline_code)
        failed = stripe_client.v1.payment_intents.retrieve(intent.id)
        assert failed.status == "requires_payment_method"
        assert (failed.last_payment_error.decline_code, failed.last_payment_error.message) == (decline_code, message)
        charge = stripe_client.v1.charges.retrieve(failed.last_payment_error.charge)
        assert (charge.status, charge.failure_code, charge.outcome.reason) == ("failed", "card_declined", decline_code)
        event = stripe_client.v1.events.list(params={"type": "payment_intent.payment_failed"}).data[0]
        assert event.data.object.last_payment_error.decline_code == decline_code

    def test_a_declined_intent_can_be_paid_with_another_card(self, stripe_client):
        intent = stripe_client.v1.payment_intents.create(params={"amount": 700, "currency": "eur"})
        with pytest.raises(stripe.CardError):
            stripe_client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_chargeDeclined"})

        paid = stripe_client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_mastercard"})

        assert (paid.status, paid.last_payment_error) == ("succeeded", None)
        charge = stripe_client.v1.charges.retrieve(paid.latest_charge)
        assert (charge.payment_method_details.card.brand, charge.payment_method_details.card.last4) == (
            "mastercard",
            "4444",
        )

    def test_a_card_that_asks_for_3d_secure_waits_for_the_customer(self, emulator, stripe_client):
        intent = stripe_client.v1.payment_intents.create(params={"amount": 700, "currency": "eur"})

        waiting = stripe_client.v1.payment_intents.confirm(
            intent.id, params={"payment_method": "pm_card_authenticationRequired", "return_url": "https://x.example/"}
        )

        assert (waiting.status, waiting.next_action.type, waiting.latest_charge) == (
            "requires_action",
            "redirect_to_url",
            None,
        )
        assert waiting.next_action.redirect_to_url.url.startswith(f"{emulator.url}/3ds/{intent.id}")
        types = [e.type for e in stripe_client.v1.events.list().data]
        assert "payment_intent.requires_action" in types
        assert "charge.succeeded" not in types

        emulator.control("POST", f"payment_intents/{intent.id}/authenticate", {"outcome": "complete"})

        assert stripe_client.v1.payment_intents.retrieve(intent.id).status == "succeeded"

    def test_failed_3d_secure_leaves_the_intent_for_another_card(self, emulator, stripe_client):
        intent = stripe_client.v1.payment_intents.create(params={"amount": 700, "currency": "eur"})
        stripe_client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_authenticationRequired"})

        emulator.control("POST", f"payment_intents/{intent.id}/authenticate", {"outcome": "fail"})

        failed = stripe_client.v1.payment_intents.retrieve(intent.id)
        assert (failed.status, failed.last_payment_error.code) == (
            "requires_payment_method",
            "payment_intent_authentication_failure",
        )

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


class TestClientSide:
    """What an app does with the client secret and the publishable key (`pk_test_X` pairs with `sk_test_X`)."""

    @pytest.fixture
    def publishable(self, emulator):
        key = "pk_test_" + emulator.api_key.removeprefix("sk_test_")
        return stripe.StripeClient(key, base_addresses={"api": emulator.url}, max_network_retries=0)

    def test_the_publishable_key_confirms_with_the_client_secret(self, stripe_client, publishable):
        intent = stripe_client.v1.payment_intents.create(params={"amount": 900, "currency": "usd"})

        paid = publishable.v1.payment_intents.confirm(
            intent.id, params={"client_secret": intent.client_secret, "payment_method": "pm_card_visa"}
        )

        assert paid.status == "succeeded"
        seen = publishable.v1.payment_intents.retrieve(intent.id, params={"client_secret": intent.client_secret})
        assert seen.amount_received == 900

    def test_without_the_right_client_secret_the_intent_does_not_exist(self, stripe_client, publishable):
        intent = stripe_client.v1.payment_intents.create(params={"amount": 900, "currency": "usd"})

        for secret in (None, intent.client_secret + "x"):
            with pytest.raises(stripe.InvalidRequestError) as error:
                publishable.v1.payment_intents.confirm(
                    intent.id,
                    params={"payment_method": "pm_card_visa", **({"client_secret": secret} if secret else {})},
                )
            assert error.value.http_status == 404
        assert stripe_client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"

    def test_the_publishable_key_can_do_nothing_else(self, publishable):
        with pytest.raises(stripe.AuthenticationError) as error:
            publishable.v1.customers.list()

        assert "publishable API key" in error.value.user_message

    def test_the_confirm_page_pays_with_a_test_card_like_stripe_js(self, emulator, stripe_client):
        intent = stripe_client.v1.payment_intents.create(params={"amount": 1250, "currency": "usd"})
        key = "pk_test_" + emulator.api_key.removeprefix("sk_test_")

        page = requests.get(
            f"{emulator.url}/confirm", params={"client_secret": intent.client_secret, "key": key}, timeout=5
        )
        assert page.status_code == 200
        assert "Pay 12.50 USD" in page.text
        assert "pm_card_authenticationRequired" in page.text
        # What the page's script sends: the key as a parameter, as Stripe.js does.
        answer = requests.post(
            f"{emulator.url}/v1/payment_intents/{intent.id}/confirm",
            data={
                "key": key,
                "client_secret": intent.client_secret,
                "payment_method": "pm_card_authenticationRequired",
                "return_url": f"{emulator.url}/confirm?client_secret={intent.client_secret}",
            },
            timeout=5,
        ).json()
        challenge = answer["next_action"]["redirect_to_url"]["url"]
        assert re.search(r"/3ds/pi_", challenge)
        back = requests.post(challenge, data={"outcome": "complete"}, allow_redirects=False, timeout=5)

        assert back.status_code == 303
        assert "redirect_status=succeeded" in back.headers["Location"]
        assert "Status: <b>succeeded</b>" in requests.get(back.headers["Location"], timeout=5).text
        assert (
            requests.get(f"{emulator.url}/confirm", params={"client_secret": "pi_x_secret_y"}, timeout=5).status_code
            == 404
        )
