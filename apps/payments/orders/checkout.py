"""Starting payments in Stripe: a Checkout Session for an order, a Payment Link for a cart.

A Checkout Session charges exactly the order's lines: each is sent as `price_data` (the
order's own unit amount and currency on the mirrored product), so a price changed a
second ago, or a price whose mirror is behind or failed, can never make Stripe charge
another amount than the order says. A Payment Link must name Stripe prices: it is made
only while Stripe holds each price as the catalog has it now (409 otherwise).

What Stripe needs and the mirror has not brought yet (the user's customer, a product,
a link's price) is mirrored here, inside the request, rather than refusing the cart.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import Price
from apps.payments.gateway.client import gateway
from apps.payments.gateway.errors import StripeRefused, StripeUnavailable
from apps.payments.mirror.installation import NAMESPACE_KEY, installation_namespace
from apps.payments.mirror.outbox import mirror_record_change
from apps.payments.mirror.specs import price_immutable
from apps.payments.mirror.sync import mirror_sync
from apps.payments.models import MirrorKind, MirrorRecord, MirrorState, Order, OrderStatus, PaymentLink
from apps.payments.orders.errors import CheckoutUnavailable, PriceNotInStripe
from apps.payments.orders.idempotency import request_fingerprint
from apps.payments.orders.lifecycle import CartLine, order_create, order_transition
from apps.users.models import User

# A worker may be mirroring the same object right now; its result is waited for this long.
WAIT_FOR_MIRROR_SECONDS = 10.0


def _mirrored(kind: str, object_id: int, is_current=lambda record: bool(record.stripe_id)) -> MirrorRecord | None:
    """The object's mirror row once Stripe holds it as wanted, mirroring it now if need be; None if it cannot."""
    if not settings.STRIPE_MIRROR_ENABLED:
        raise CheckoutUnavailable("Stripe is not configured here (no STRIPE_SECRET_KEY, or STRIPE_MIRROR_ENABLED off).")
    record = MirrorRecord.objects.filter(kind=kind, object_id=object_id).first()
    if record is not None and is_current(record):
        return record
    if record is None or record.state == MirrorState.FAILED or record.synced_version >= record.version:
        mirror_record_change(kind=kind, object_id=object_id, queue=False)
    record = MirrorRecord.objects.get(kind=kind, object_id=object_id)
    mirror_sync(record_id=record.pk)
    deadline = time.monotonic() + WAIT_FOR_MIRROR_SECONDS
    next_try = time.monotonic() + 1
    while True:
        record.refresh_from_db()
        if is_current(record):
            return record
        if record.state == MirrorState.FAILED or time.monotonic() > deadline:
            return None
        time.sleep(0.1)  # a worker holds the lease and is writing it to Stripe
        if time.monotonic() >= next_try:  # or it was killed: its lease is then free, and the push is ours
            mirror_sync(record_id=record.pk)
            next_try = time.monotonic() + 1


def stripe_id_of(kind: str, object_id: int) -> str:
    record = _mirrored(kind, object_id)
    if record is None:
        record = MirrorRecord.objects.get(kind=kind, object_id=object_id)
        raise CheckoutUnavailable(f"{record.app_ref} could not be put in Stripe: {record.last_error or 'timed out'}")
    return record.stripe_id


def current_stripe_price(price: Price) -> str:
    """The Stripe price that charges what the catalog says now (amount, currency, recurrence)."""
    wanted = price_immutable(price)

    def holds_current_amount(record: MirrorRecord) -> bool:
        return bool(record.stripe_id) and record.pushed.get("immutable") == wanted

    stripe_id_of(MirrorKind.PRODUCT, price.product_id)  # a price needs its product, which may carry it
    record = _mirrored(MirrorKind.PRICE, price.pk, holds_current_amount)
    if record is None:
        raise PriceNotInStripe(
            f"Stripe does not hold the current price of {price.product.name} ({price.unit_amount} "
            f"{price.currency}) yet; try again in a moment."
        )
    return record.stripe_id


def _line_items(order: Order) -> list[dict]:
    """The order's own lines: what it says is exactly what Stripe charges."""
    lines = order.lines.select_related("price")
    products = {line.price.product_id for line in lines}
    stripe_products = {product_id: stripe_id_of(MirrorKind.PRODUCT, product_id) for product_id in products}
    return [
        {
            "price_data": {
                "currency": order.currency,
                "unit_amount": line.unit_amount,
                "product": stripe_products[line.price.product_id],
            },
            "quantity": line.quantity,
        }
        for line in lines
    ]


def order_for_cart(*, user: User, lines: list[CartLine], fingerprint: str, settled: Order | None = None) -> Order:
    """The user's newest order for this cart made within `CHECKOUT_REUSE_SECONDS` and not paid yet, else a new
    one. Given `settled` (the newest, which Stripe paid or expired while its event has not arrived), only an
    order made after it: an older one was left for a newer one, and may well be paid by now too.

    Requests of one user are taken one at a time, so a double click or a retried request finds the
    order its twin made instead of making a second (and a higher id is a later order).
    """
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        candidates = Order.objects.filter(
            user=user,
            cart_fingerprint=fingerprint,
            status__in=(OrderStatus.PENDING, OrderStatus.FAILED),
            created_at__gte=timezone.now() - timedelta(seconds=settings.CHECKOUT_REUSE_SECONDS),
        )
        if settled is not None:
            candidates = candidates.filter(pk__gt=settled.pk)
        order = candidates.order_by("-created_at", "-pk").first()
        return order or order_create(user=user, lines=lines, cart_fingerprint=fingerprint)


def cart_fingerprint(lines: list[CartLine], **where) -> str:
    """What makes two checkout requests the same: the cart and where the customer goes after."""
    return request_fingerprint({"lines": [(line.price.pk, line.quantity) for line in lines], **where})


def checkout_for_cart(*, user: User, lines: list[CartLine], success_url: str, cancel_url: str) -> Order:
    """The order and Checkout Session for a cart. The same user sending the same cart again within
    `CHECKOUT_REUSE_SECONDS` gets the same open session back, not a second order; a session is made
    once per order."""
    fingerprint = cart_fingerprint(lines, success_url=success_url, cancel_url=cancel_url)
    order = order_for_cart(user=user, lines=lines, fingerprint=fingerprint)
    if order.checkout_session_id:
        if _session_open(order.checkout_session_id):
            return order
        # Paid or expired a moment ago, its event still on the way (it settles that order): the customer
        # buys the cart again, in an order of their own, not on a page that can no longer be paid.
        order = order_for_cart(user=user, lines=lines, fingerprint=fingerprint, settled=order)
        if order.checkout_session_id:
            return order  # a twin request made it a moment ago
    return checkout_start(order=order, success_url=success_url, cancel_url=cancel_url)


def _session_open(session_id: str) -> bool:
    """Whether the customer can still pay on this session; while Stripe cannot say, it is taken as open (the
    page itself tells a customer who paid already)."""
    gw = gateway()
    try:
        session = gw.find_for_client(lambda options: gw.v1.checkout.sessions.retrieve(session_id, options=options))
    except StripeUnavailable:
        return True
    return session is not None and session.status == "open"


@contextmanager
def canceled_unless_started(order: Order, what: str) -> Iterator[None]:
    """A payment Stripe could not be reached for, or refused, cancels its order: none is left pending
    without its session or intent. The client is told which (503, or 502 with Stripe's words)."""
    try:
        yield
    except (StripeUnavailable, CheckoutUnavailable) as error:
        _cancel_unless_a_twin_started(order, f"{what} not started: {error}")
        raise CheckoutUnavailable(str(error)) from error
    except stripe.StripeError as error:
        refused = StripeRefused(error)
        _cancel_unless_a_twin_started(order, f"Stripe refused: {refused}")
        raise refused from error


def _cancel_unless_a_twin_started(order: Order, cause: str) -> None:
    """A twin request (the same cart a moment ago, the same key) may have started the payment meanwhile:
    its order stays, and a retry gets it back."""
    if Order.objects.filter(pk=order.pk).exclude(checkout_session_id=None, payment_intent_id="").exists():
        return
    order_transition(order_id=order.pk, to=OrderStatus.CANCELED, cause=cause)


def checkout_start(*, order: Order, success_url: str, cancel_url: str) -> Order:
    """Create the order's Checkout Session (once: the key is the order's) and keep its id and URL.

    If Stripe cannot be reached, or refuses, the order is canceled: none is left pending without a session.
    """
    with canceled_unless_started(order, "checkout"):
        reference = {"order": str(order.pk), NAMESPACE_KEY: installation_namespace()}
        params = {
            "mode": "payment",
            "line_items": _line_items(order),
            "success_url": success_url,
            "cancel_url": cancel_url,
            # For people reading the dashboard; events find the order through the session's id only.
            "client_reference_id": str(order.pk),
            "metadata": reference,
            "payment_intent_data": {"metadata": reference},
        }
        if order.user_id:
            params["customer"] = stripe_id_of(MirrorKind.USER, order.user_id)
        else:
            params["customer_email"] = order.email
        gw = gateway()
        session = gw.call(
            lambda options: gw.v1.checkout.sessions.create(params=params, options=options),
            idempotency_key=f"order:{order.pk}:checkout",
        )
    Order.objects.filter(pk=order.pk).update(
        checkout_session_id=session.id, checkout_url=session.url, stripe_customer_id=params.get("customer", "")
    )
    order.refresh_from_db()
    return order


def payment_link_create(*, lines: list[CartLine], created_by) -> PaymentLink:
    """A reusable link; each payment through it becomes an order of its own (see the webhooks)."""
    try:
        line_items = [{"price": current_stripe_price(line.price), "quantity": line.quantity} for line in lines]
        gw = gateway()
        metadata = {"created_by": str(created_by.pk), NAMESPACE_KEY: installation_namespace()}
        # Its payments (or the subscriptions it starts) carry our namespace too, so their events are known
        # as ours before their order is made.
        ours = {"metadata": {NAMESPACE_KEY: installation_namespace()}}
        params = {"line_items": line_items, "metadata": metadata}
        if lines[0].price.recurring_interval:
            trials = [line.price.trial_days for line in lines if line.price.trial_days]
            params["subscription_data"] = {**ours, **({"trial_period_days": max(trials)} if trials else {})}
        else:
            params["payment_intent_data"] = ours
        link = gw.call(lambda options: gw.v1.payment_links.create(params=params, options=options))
    except (StripeUnavailable, CheckoutUnavailable) as error:
        raise CheckoutUnavailable(str(error)) from error
    except stripe.StripeError as error:
        raise StripeRefused(error) from error
    return PaymentLink.objects.create(
        stripe_id=link.id,
        url=link.url,
        currency=lines[0].price.currency,
        lines=[{"price": line.price.pk, "quantity": line.quantity} for line in lines],
        created_by=created_by,
    )
