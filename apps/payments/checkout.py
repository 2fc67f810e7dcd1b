"""Starting payments in Stripe: a Checkout Session for an order, a Payment Link for a cart.

What Stripe needs and the mirror has not brought yet (the user's customer, a price)
is mirrored here, inside the request, rather than refusing the cart.
"""

import time

from apps.catalog.models import Price
from apps.payments import mirror, orders
from apps.payments.models import MirrorKind, MirrorRecord, MirrorState, Order, OrderStatus
from apps.payments.selectors import stripe_price_id
from apps.payments.stripe_client import StripeUnavailable, gateway

# A worker may be mirroring the same object right now; its result is waited for this long.
WAIT_FOR_MIRROR_SECONDS = 10.0


class CheckoutUnavailable(Exception):
    """Stripe could not be reached to start the payment; nothing was charged."""


def _stripe_id_of(kind: str, object_id: int) -> str:
    """The Stripe id of a local object, mirroring it now if the mirror has not yet."""
    record = MirrorRecord.objects.filter(kind=kind, object_id=object_id).first()
    if record is None or not record.stripe_id:
        if record is None or record.state == MirrorState.FAILED:
            mirror.mirror_record_change(kind=kind, object_id=object_id, queue=False)
        record = MirrorRecord.objects.get(kind=kind, object_id=object_id)
        mirror.mirror_sync(record_id=record.pk)
        deadline = time.monotonic() + WAIT_FOR_MIRROR_SECONDS
        while True:
            record.refresh_from_db()
            if record.stripe_id or record.state == MirrorState.FAILED or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # a worker holds the lease and is writing it to Stripe
    if not record.stripe_id:
        raise CheckoutUnavailable(f"{record.app_ref} could not be put in Stripe: {record.last_error or 'timed out'}")
    return record.stripe_id


def _stripe_price(price: Price) -> str:
    current = stripe_price_id(price_id=price.pk)
    if current:
        return current
    _stripe_id_of(MirrorKind.PRODUCT, price.product_id)  # a price needs its product, which may carry it
    return _stripe_id_of(MirrorKind.PRICE, price.pk)


def _line_items(order: Order) -> list[dict]:
    return [{"price": _stripe_price(line.price), "quantity": line.quantity} for line in order.lines.all()]


def checkout_start(*, order: Order, success_url: str, cancel_url: str) -> Order:
    """Create the order's Checkout Session (once: the key is the order's) and keep its id and URL."""
    try:
        params = {
            "mode": "payment",
            "line_items": _line_items(order),
            "success_url": success_url,
            "cancel_url": cancel_url,
            "client_reference_id": str(order.pk),
            "metadata": {"order": str(order.pk)},
            "payment_intent_data": {"metadata": {"order": str(order.pk)}},
        }
        if order.user_id:
            params["customer"] = _stripe_id_of(MirrorKind.USER, order.user_id)
        else:
            params["customer_email"] = order.email
        gw = gateway()
        session = gw.call(
            lambda options: gw.v1.checkout.sessions.create(params=params, options=options),
            idempotency_key=f"order:{order.pk}:checkout",
        )
    except (StripeUnavailable, CheckoutUnavailable) as error:
        orders.order_transition(order_id=order.pk, to=OrderStatus.CANCELED, cause=f"checkout not started: {error}")
        raise CheckoutUnavailable(str(error)) from error
    Order.objects.filter(pk=order.pk).update(
        checkout_session_id=session.id, checkout_url=session.url, stripe_customer_id=params.get("customer", "")
    )
    order.refresh_from_db()
    return order


def payment_link_create(*, lines: list[orders.CartLine], created_by) -> dict:
    """A reusable link; each payment through it becomes an order of its own (see the webhooks)."""
    try:
        line_items = [{"price": _stripe_price(line.price), "quantity": line.quantity} for line in lines]
        gw = gateway()
        link = gw.call(
            lambda options: gw.v1.payment_links.create(
                params={"line_items": line_items, "metadata": {"created_by": str(created_by.pk)}}, options=options
            )
        )
    except StripeUnavailable as error:
        raise CheckoutUnavailable(str(error)) from error
    return {"payment_link_id": link.id, "url": link.url}
