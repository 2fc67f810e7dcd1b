"""Every object the emulator answers carries the top-level fields of Stripe's own example of its type
(Stripe's published API fixtures at the pinned API version), and dj-stripe stores each of them."""

import contextlib

import pytest
import stripe

from tests.stripe_emulator.sdk_types import shape_problems

STRIPE_FIELDS = {
    "customer": frozenset(
        """
        address balance created currency default_source delinquent description discount email id
        invoice_prefix invoice_settings livemode metadata name next_invoice_sequence object phone
        preferred_locales shipping tax_exempt test_clock
        """.split()
    ),
    "product": frozenset(
        """
        active created default_price description id images livemode marketing_features metadata name object
        package_dimensions shippable statement_descriptor tax_code type unit_label updated url
        """.split()
    ),
    "price": frozenset(
        """
        active billing_scheme created currency custom_unit_amount id livemode lookup_key metadata nickname
        object product recurring tax_behavior tiers_mode transform_quantity type unit_amount
        unit_amount_decimal
        """.split()
    ),
    "checkout.session": frozenset(
        """
        adaptive_pricing after_expiration allow_promotion_codes amount_subtotal amount_total automatic_tax
        billing_address_collection cancel_url client_reference_id client_secret collected_information consent
        consent_collection created currency currency_conversion custom_fields custom_text customer
        customer_account customer_creation customer_details customer_email discounts expires_at id
        integration_identifier invoice invoice_creation livemode locale managed_payments metadata mode object
        origin_context payment_intent payment_link payment_method_collection
        payment_method_configuration_details payment_method_options payment_method_types payment_status
        permissions phone_number_collection recovered_from saved_payment_method_options setup_intent
        shipping_address_collection shipping_cost shipping_options status submit_type subscription
        success_url total_details ui_mode url wallet_options
        """.split()
    ),
    "item": frozenset(
        """
        adjustable_quantity amount_discount amount_subtotal amount_tax amount_total currency description id
        metadata object price quantity
        """.split()
    ),
    "payment_link": frozenset(
        """
        active after_completion allow_promotion_codes application application_fee_amount
        application_fee_percent automatic_tax billing_address_collection consent_collection currency
        custom_fields custom_text customer_creation id inactive_message invoice_creation livemode
        managed_payments metadata object on_behalf_of payment_intent_data payment_method_collection
        payment_method_options payment_method_types phone_number_collection restrictions
        shipping_address_collection shipping_options submit_type subscription_data tax_id_collection
        transfer_data url
        """.split()
    ),
    "payment_intent": frozenset(
        """
        amount amount_capturable amount_details amount_received application application_fee_amount
        automatic_payment_methods canceled_at cancellation_reason capture_method client_secret
        confirmation_method created currency customer customer_account description
        excluded_payment_method_types id last_payment_error latest_charge livemode managed_payments metadata
        next_action object on_behalf_of payment_method payment_method_configuration_details
        payment_method_options payment_method_types processing receipt_email review setup_future_usage
        shipping source statement_descriptor statement_descriptor_suffix status transfer_data transfer_group
        """.split()
    ),
    "charge": frozenset(
        """
        amount amount_captured amount_refunded application application_fee application_fee_amount
        balance_transaction billing_details calculated_statement_descriptor captured created currency
        customer description disputed failure_balance_transaction failure_code failure_message fraud_details
        id livemode metadata object on_behalf_of outcome paid payment_intent payment_method
        payment_method_details receipt_email receipt_number receipt_url refunded refunds review shipping
        source source_transfer statement_descriptor statement_descriptor_suffix status transfer_data
        transfer_group
        """.split()
    ),
    "refund": frozenset(
        """
        amount balance_transaction charge created currency customer customer_account destination_details id
        metadata object payment_intent payment_method reason receipt_number source_transfer_reversal status
        transfer_reversal
        """.split()
    ),
    "balance_transaction": frozenset(
        """
        amount available_on balance_type created currency description exchange_rate fee fee_details id net
        object reporting_category source status type
        """.split()
    ),
    "payment_method": frozenset(
        """
        allow_redisplay billing_details card created customer customer_account id livemode metadata object
        type
        """.split()
    ),
    "event": frozenset(
        """
        api_version created data id livemode object pending_webhooks request type
        """.split()
    ),
    "webhook_endpoint": frozenset(
        """
        api_version application created description enabled_events id livemode metadata object status url
        """.split()
    ),
    "account": frozenset(
        """
        business_profile business_type capabilities charges_enabled controller country created
        default_currency details_submitted email external_accounts future_requirements id metadata object
        payouts_enabled requirements settings tos_acceptance type
        """.split()
    ),
}


@pytest.mark.parametrize("kind", sorted(STRIPE_FIELDS))
def test_objects_carry_the_fields_of_stripes_examples(every_object, kind):
    obj = every_object[kind]

    assert obj.object == kind
    assert set(obj.to_dict()) == STRIPE_FIELDS[kind]


SDK_CLASSES = {
    "customer": stripe.Customer,
    "product": stripe.Product,
    "price": stripe.Price,
    "checkout.session": stripe.checkout.Session,
    "item": stripe.LineItem,
    "payment_link": stripe.PaymentLink,
    "payment_intent": stripe.PaymentIntent,
    "charge": stripe.Charge,
    "refund": stripe.Refund,
    "balance_transaction": stripe.BalanceTransaction,
    "payment_method": stripe.PaymentMethod,
    "event": stripe.Event,
    "webhook_endpoint": stripe.WebhookEndpoint,
    "account": stripe.Account,
}


@pytest.mark.parametrize("kind", sorted(SDK_CLASSES))
def test_objects_pass_the_type_check_of_the_sdks_generated_classes(every_object, kind):
    """Field names, null only where Stripe allows it, enum values from Stripe's list (the official SDK's
    generated classes at the pinned API version say which)."""
    assert shape_problems(every_object[kind].to_dict(), SDK_CLASSES[kind]) == []


@pytest.mark.parametrize(
    ("card", "params"),
    [
        ("pm_card_chargeDeclinedInsufficientFunds", {}),
        ("pm_card_authenticationRequired", {"return_url": "https://x.example/"}),
        ("pm_card_authenticationRequired", {}),
    ],
)
def test_declined_and_waiting_intents_pass_the_type_check_too(stripe_client, card, params):
    intent = stripe_client.v1.payment_intents.create(params={"amount": 700, "currency": "eur"})
    with contextlib.suppress(stripe.CardError):
        stripe_client.v1.payment_intents.confirm(intent.id, params={"payment_method": card, **params})

    seen = stripe_client.v1.payment_intents.retrieve(intent.id).to_dict()

    assert seen["status"] in ("requires_payment_method", "requires_action")
    assert shape_problems(seen, stripe.PaymentIntent) == []
    event = stripe_client.v1.events.list(params={"limit": 1}).data[0].to_dict()
    assert shape_problems(event, stripe.Event) == []
