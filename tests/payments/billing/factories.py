"""Plans, subscribers and subscriptions as billing finds them, made without asking Stripe.

A plan is a catalog price mirrored to Stripe (its mirror rows synced, dj-stripe's copies of its product and
price written); a subscriber is a user with a mirrored customer; a subscription is Stripe-shaped JSON, stored
through dj-stripe's own `sync_from_stripe_data` as billing stores it. dj-stripe asks Stripe who owns the API
key unless it knows: `stripe_account()` tells it once.
"""

from djstripe import models as djstripe_models

from apps.catalog.models import Price
from apps.payments.mirror.djstripe_copies import store
from apps.payments.mirror.models import MirrorKind, MirrorState
from apps.payments.mirror.specs import price_immutable
from tests.catalog.factories import PriceFactory, ProductFactory
from tests.payments.factories import MirrorRecordFactory
from tests.payments.stripe_stand_in import API_KEY, sdk_object

ACCOUNT_ID = "acct_standIn"
CREATED = 1_767_268_800  # 2026-01-01 12:00 UTC
MONTH = 30 * 24 * 3600


def stripe_account() -> None:
    """dj-stripe's record of the Stripe account behind the stand-in's key."""
    account, _ = djstripe_models.Account.objects.get_or_create(
        id=ACCOUNT_ID, defaults={"stripe_data": {"id": ACCOUNT_ID, "object": "account"}}
    )
    djstripe_models.APIKey.objects.get_or_create(
        secret=API_KEY, defaults={"type": "secret", "livemode": False, "djstripe_owner_account": account}
    )


def _mirrored(kind: str, object_id: int, stripe_id: str, **fields) -> None:
    MirrorRecordFactory(
        kind=kind, object_id=object_id, stripe_id=stripe_id, state=MirrorState.SYNCED, synced_version=1, **fields
    )


def stripe_price(price: Price) -> dict:
    """The Stripe price that mirrors a catalog price, as Stripe shows it."""
    return {
        "id": f"price_{price.pk}",
        "object": "price",
        "product": f"prod_{price.product_id}",
        "active": price.active,
        "currency": price.currency,
        "unit_amount": price.unit_amount,
        "unit_amount_decimal": str(price.unit_amount),
        "type": "recurring" if price.recurring_interval else "one_time",
        "recurring": (
            {"interval": price.recurring_interval, "interval_count": price.recurring_interval_count}
            if price.recurring_interval
            else None
        ),
        "livemode": False,
        "metadata": {},
        "created": CREATED,
    }


def plan(
    name: str = "Pro",
    *,
    unit_amount: int = 1500,
    currency: str = "eur",
    interval: str = "month",
    interval_count: int = 1,
    trial_days: int | None = None,
    product=None,
) -> Price:
    """A recurring catalog price, in Stripe as `price_<pk>` of `prod_<product pk>`."""
    product = product or ProductFactory(name=name)
    price = PriceFactory(
        product=product,
        unit_amount=unit_amount,
        currency=currency,
        recurring_interval=interval,
        recurring_interval_count=interval_count,
        trial_days=trial_days,
    )
    if not djstripe_models.Product.objects.filter(id=f"prod_{product.pk}").exists():
        _mirrored(MirrorKind.PRODUCT, product.pk, f"prod_{product.pk}")
        store(
            djstripe_models.Product,
            {"id": f"prod_{product.pk}", "object": "product", "name": product.name, "active": True, "metadata": {}},
        )
    _mirrored(MirrorKind.PRICE, price.pk, f"price_{price.pk}", pushed={"immutable": price_immutable(price)})
    store(djstripe_models.Price, stripe_price(price))
    return price


def subscriber(user) -> str:
    """The user's Stripe customer (`cus_<pk>`), mirrored, with dj-stripe's copy tied to the user."""
    customer = f"cus_{user.pk}"
    if not djstripe_models.Customer.objects.filter(id=customer).exists():
        _mirrored(MirrorKind.USER, user.pk, customer)
        store(djstripe_models.Customer, {"id": customer, "object": "customer", "email": user.email, "metadata": {}})
        djstripe_models.Customer.objects.filter(id=customer).update(subscriber=user)
    return customer


def subscription_json(
    subscription_id: str,
    *,
    customer: str,
    prices: list[Price],
    status: str = "active",
    quantity: int = 1,
    namespace: str = "testsuite",
    **fields,
) -> dict:
    """A subscription as Stripe's API answers it (items listed in full)."""
    items = [
        {
            "id": f"si_{subscription_id}_{price.pk}",
            "object": "subscription_item",
            "subscription": subscription_id,
            "price": stripe_price(price),
            "quantity": quantity,
            "created": CREATED,
            "metadata": {},
            "current_period_start": CREATED,
            "current_period_end": CREATED + MONTH,
        }
        for price in prices
    ]
    return {
        "id": subscription_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "currency": prices[0].currency,
        "created": CREATED,
        "start_date": CREATED,
        "ended_at": None,
        "trial_end": None,
        "cancel_at_period_end": False,
        "livemode": False,
        "latest_invoice": None,
        "default_payment_method": None,
        "default_tax_rates": [],
        "metadata": {"app_namespace": namespace} if namespace else {},
        "items": {"object": "list", "data": items, "has_more": False, "url": "/v1/subscription_items"},
        **fields,
    }


def subscribed(user, *prices: Price, subscription_id: str = "sub_1", **fields) -> djstripe_models.Subscription:
    """The user's subscription to these plans, stored here as Stripe told it."""
    stripe_account()
    customer = subscriber(user)
    data = subscription_json(subscription_id, customer=customer, prices=list(prices), **fields)
    return djstripe_models.Subscription.sync_from_stripe_data(sdk_object(data))


def invoice_json(
    invoice_id: str,
    *,
    customer: str,
    subscription_id: str | None,
    status: str = "paid",
    billing_reason: str = "subscription_cycle",
    amount: int = 1500,
    currency: str = "eur",
    attempt_count: int = 1,
    **fields,
) -> dict:
    """An invoice as Stripe's API answers it: its subscription named under `parent`, as since API 2025-03-31."""
    paid = status == "paid"
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": customer,
        "status": status,
        "billing_reason": billing_reason,
        "currency": currency,
        "amount_due": amount,
        "amount_paid": amount if paid else 0,
        "amount_remaining": 0 if paid else amount,
        "total": amount,
        "subtotal": amount,
        "attempt_count": attempt_count,
        "next_payment_attempt": None if paid else CREATED + 3 * 24 * 3600,
        "number": f"INV-{invoice_id}",
        "hosted_invoice_url": f"https://invoice.stripe.com/i/{invoice_id}",
        "created": CREATED,
        "period_start": CREATED,
        "period_end": CREATED,
        "livemode": False,
        "metadata": {},
        "discounts": [],
        "default_payment_method": None,
        "parent": (
            {"type": "subscription_details", "subscription_details": {"subscription": subscription_id, "metadata": {}}}
            if subscription_id
            else None
        ),
        "lines": {"object": "list", "data": [], "has_more": False, "url": f"/v1/invoices/{invoice_id}/lines"},
        **fields,
    }


def invoiced(user, invoice_id: str = "in_1", *, subscription_id: str = "sub_1", **fields) -> djstripe_models.Invoice:
    """An invoice of the user's subscription, stored here as Stripe told it."""
    stripe_account()
    data = invoice_json(invoice_id, customer=subscriber(user), subscription_id=subscription_id, **fields)
    return djstripe_models.Invoice.sync_from_stripe_data(sdk_object(data))
