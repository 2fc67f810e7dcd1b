"""The emulator accepts every parameter Stripe accepts on the endpoints it implements (as the official SDK's
generated parameter types list them), even where it ignores the effect, and refuses any other as Stripe does."""

import pytest
import stripe

from tools.stripe_emulator import api_billing, api_catalog, api_checkout, api_customers, api_events, api_payments
from tools.stripe_emulator.sdk_params import ENDPOINT_PARAMS, params_type


def test_every_endpoint_is_checked_against_the_sdks_parameter_types():
    served = {
        f"{method} {pattern}"
        for module in (api_billing, api_catalog, api_checkout, api_customers, api_events, api_payments)
        for method, _, pattern, _ in module.router.routes
    }

    assert served == set(ENDPOINT_PARAMS)
    assert all(params_type(endpoint) is not None for endpoint in served)


def test_valid_product_and_price_parameters_are_accepted(stripe_client):
    product = stripe_client.v1.products.create(
        params={"name": "Box", "package_dimensions": {"height": 1.5, "length": 2, "weight": 3, "width": 4}}
    )
    converted = stripe_client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 1000,
            "currency_options": {"eur": {"unit_amount": 900}},
        }
    )
    tiered = stripe_client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            "recurring": {"interval": "month"},
            "tiers": [{"up_to": 10, "unit_amount": 100}, {"up_to": "inf", "unit_amount": 50}],
        }
    )

    assert product.package_dimensions.width == 4
    assert converted.unit_amount == 1000
    assert (tiered.billing_scheme, tiered.tiers_mode, tiered.unit_amount) == ("tiered", "graduated", None)


def test_checkout_session_options_stripe_documents_are_accepted(stripe_client):
    price = stripe_client.v1.prices.create(
        params={"currency": "usd", "unit_amount": 500, "product_data": {"name": "Mug"}}
    )

    session = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [{"price": price.id, "quantity": 1, "adjustable_quantity": {"enabled": True}}],
            "success_url": "https://x.example/",
            "automatic_tax": {"enabled": True},
            "phone_number_collection": {"enabled": True},
            "custom_text": {"submit": {"message": "Thanks"}},
            "shipping_address_collection": {"allowed_countries": ["US", "FR"]},
            "consent_collection": {"terms_of_service": "required"},
            "payment_method_types": ["card"],
            "locale": "fr",
            "submit_type": "pay",
            "ui_mode": "hosted_page",
            "invoice_creation": {"enabled": False},
        }
    )

    assert (session.status, session.ui_mode) == ("open", "hosted_page")


@pytest.mark.parametrize(
    ("create", "param"),
    [
        (lambda v1, price: v1.products.create(params={"name": "Box", "colour": "red"}), "colour"),
        (
            lambda v1, price: v1.checkout.sessions.create(
                params={
                    "mode": "payment",
                    "success_url": "https://x.example/",
                    "line_items": [{"price": price.id, "quantity": 1, "colour": "red"}],
                }
            ),
            "line_items[0][colour]",
        ),
        (
            lambda v1, price: v1.customers.create(params={"address": {"line1": "1 Rue", "planet": "Mars"}}),
            "address[planet]",
        ),
        (lambda v1, price: v1.refunds.create(params={"charge": "ch_x", "amount_in_cents": 5}), "amount_in_cents"),
    ],
)
def test_unknown_parameters_are_refused_naming_the_first(stripe_client, create, param):
    price = stripe_client.v1.prices.create(
        params={"currency": "usd", "unit_amount": 500, "product_data": {"name": "Mug"}}
    )

    with pytest.raises(stripe.InvalidRequestError) as error:
        create(stripe_client.v1, price)

    assert (error.value.http_status, error.value.param, error.value.code) == (400, param, "parameter_unknown")
    assert error.value.user_message == f"Received unknown parameter: {param}"


def test_a_client_secret_is_a_parameter_only_beside_a_publishable_key(stripe_client):
    intent = stripe_client.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})

    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe_client.v1.payment_intents.confirm(
            intent.id, params={"payment_method": "pm_card_visa", "client_secret": intent.client_secret}
        )

    assert error.value.param == "client_secret"
