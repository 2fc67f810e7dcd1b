"""Every event type in the handler table answers a typed outcome (`config.outcomes.Outcome`), whose text is
what the stored event says: here each type meets an object that is none of ours, the outcome it must know."""

import pytest
import stripe

from apps.payments.billing.outcomes import BillingOutcome
from apps.payments.mirror.outcomes import CatalogOutcome
from apps.payments.orders.outcomes import OrderOutcome
from apps.payments.webhooks.handlers import HANDLERS
from config.outcomes import Outcome

pytestmark = pytest.mark.django_db

FOREIGN = {"app_ref": "catalog.product:1", "app_namespace": "another-installation"}


def _event(event_type: str, obj: dict) -> dict:
    return {"id": f"evt_{event_type}", "type": event_type, "created": 1_767_268_800, "data": {"object": obj}}


@pytest.fixture
def foreign_subscription(mirror_on):
    """A subscription another installation sold through the same Stripe account."""
    client = stripe.StripeClient(mirror_on.api_key, base_addresses={"api": mirror_on.url})
    product = client.v1.products.create(params={"name": "Theirs", "metadata": FOREIGN})
    price = client.v1.prices.create(
        params={"product": product.id, "unit_amount": 900, "currency": "eur", "recurring": {"interval": "month"}}
    )
    customer = client.v1.customers.create(params={"email": "theirs@example.com"})
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "https://shop.example/thanks",
            "subscription_data": {"metadata": FOREIGN},
        }
    )
    return mirror_on.complete_checkout(session.id)["subscription"]


def _objects(subscription_id: str) -> dict[str, dict]:
    product = {"id": "prod_theirs", "updated": 1, "metadata": FOREIGN}
    session = {"id": "cs_theirs", "mode": "payment", "status": "complete", "payment_status": "paid"}
    return {
        "product": product,
        "price": {"id": "price_theirs", "metadata": FOREIGN},
        "customer": {"id": "cus_theirs", "metadata": FOREIGN},
        "checkout.session": session,
        "payment_intent": {"id": "pi_theirs", "status": "canceled", "metadata": {}},
        "charge": {"id": "ch_theirs", "payment_intent": "pi_theirs", "status": "failed", "metadata": {}},
        "refund": {"id": "re_theirs", "payment_intent": "pi_theirs", "status": "failed"},
        "customer.subscription": {"id": subscription_id},
        "invoice": {"id": "in_theirs", "parent": None},
    }


EXPECTED = {
    "product.deleted": CatalogOutcome.NO_ACTIVE_PRODUCT,
    "customer.deleted": CatalogOutcome.NO_USER_HAD_CUSTOMER,
    "checkout.session.completed": OrderOutcome.NO_ORDER_FOR_SESSION,
    "checkout.session.async_payment_succeeded": OrderOutcome.NO_ORDER_FOR_SESSION,
    "checkout.session.async_payment_failed": OrderOutcome.NO_ORDER_FOR_SESSION,
    "checkout.session.expired": OrderOutcome.NO_ORDER_FOR_SESSION,
    "charge.succeeded": OrderOutcome.NO_PAYMENT_FOR_CHARGE,
    "charge.pending": OrderOutcome.NO_PAYMENT_FOR_CHARGE,
    "charge.failed": OrderOutcome.NO_PAYMENT_FOR_CHARGE,
    "charge.refunded": OrderOutcome.NO_ORDER_FOR_CHARGE,
    "refund.created": OrderOutcome.REFUND_NOT_MADE,
    "refund.updated": OrderOutcome.REFUND_NOT_MADE,
    "customer.subscription.trial_will_end": BillingOutcome.NO_TRIAL_TO_END,  # none of ours, so no trial either
    "invoice.paid": BillingOutcome.NOT_A_SUBSCRIPTION_INVOICE,
    "invoice.payment_failed": BillingOutcome.NOT_A_SUBSCRIPTION_INVOICE,
    "invoice.payment_action_required": BillingOutcome.NOT_A_SUBSCRIPTION_INVOICE,
    "invoice.upcoming": BillingOutcome.NOT_A_SUBSCRIPTION_INVOICE,
}
for _type in HANDLERS:
    if _type.startswith(("product.", "price.", "customer.updated")) and _type not in EXPECTED:
        EXPECTED[_type] = CatalogOutcome.OTHER_INSTALLATION
    elif _type.startswith("payment_intent."):
        EXPECTED[_type] = OrderOutcome.NO_ORDER_FOR_PAYMENT
    elif _type.startswith("customer.subscription.") and _type not in EXPECTED:
        EXPECTED[_type] = BillingOutcome.OTHER_INSTALLATION


def test_every_handled_type_is_expected_here():
    assert set(EXPECTED) == set(HANDLERS)


@pytest.mark.parametrize("event_type", sorted(HANDLERS))
def test_each_handler_answers_a_typed_outcome(event_type, foreign_subscription):
    obj = _objects(foreign_subscription)[event_type.rsplit(".", 1)[0]]

    outcome = HANDLERS[event_type](_event(event_type, obj))

    assert isinstance(outcome, Outcome)
    assert outcome.kind is EXPECTED[event_type]
    assert str(outcome) == outcome.kind.value.format(**outcome.facts)


def test_a_subscription_mode_session_goes_to_billing():
    session = {"id": "cs_plans", "mode": "subscription", "status": "expired"}

    outcome = HANDLERS["checkout.session.expired"](_event("checkout.session.expired", session))

    assert outcome.kind is BillingOutcome.NO_CHECKOUT_FOR_SESSION
