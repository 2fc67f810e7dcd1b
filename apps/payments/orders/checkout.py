"""Starting payments in Stripe: a Checkout Session for an order, a Payment Link for a cart.

A Checkout Session charges exactly the order's lines: each is sent as `price_data` (the
order's own unit amount and currency on the mirrored product), so a price changed a
second ago, or a price whose mirror is behind or failed, can never make Stripe charge
another amount than the order says. A Payment Link must name Stripe prices: it is made
only while Stripe holds each price as the catalog has it now (409 otherwise).

What Stripe needs and the mirror has not brought yet (the user's customer, a product,
a link's price) is mirrored here (`mirror.refs`), rather than refusing the cart.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.payments.gateway.client import gateway
from apps.payments.gateway.errors import StripeKeySpent, StripeRefused, StripeUnavailable
from apps.payments.gateway.installation import NAMESPACE_KEY, installation_namespace
from apps.payments.mirror.models import MirrorKind
from apps.payments.mirror.refs import NotInStripe, ensure_in_stripe, ensure_price_in_stripe
from apps.payments.orders.errors import CheckoutUnavailable
from apps.payments.orders.idempotency import request_fingerprint
from apps.payments.orders.lifecycle import CartLine, order_create, order_transition
from apps.payments.orders.locks import user_lock
from apps.payments.orders.models import Order, OrderStatus, PaymentLink
from apps.users.models import User


def stripe_products_of(lines: list[CartLine]) -> dict[int, str]:
    """The Stripe product of each product in the cart, pushed now if the mirror has not brought it yet (else
    `NotInStripe`: the client comes back, and nothing is made meanwhile)."""
    return {
        product_id: ensure_in_stripe(MirrorKind.PRODUCT, product_id)
        for product_id in {line.price.product_id for line in lines}
    }


def _line_items(order: Order, stripe_products: dict[int, str]) -> list[dict]:
    """The order's own lines: what it says is exactly what Stripe charges."""
    lines = order.lines.select_related("price")
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
        user_lock(user.pk)
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
    # What the session names in Stripe comes first: a cart Stripe cannot take yet leaves no order behind.
    customer = ensure_in_stripe(MirrorKind.USER, user.pk)
    stripe_products = stripe_products_of(lines)
    order = order_for_cart(user=user, lines=lines, fingerprint=fingerprint)
    if order.checkout_session_id:
        if _session_open(order.checkout_session_id):
            return order
        # Paid or expired a moment ago, its event still on the way (it settles that order): the customer
        # buys the cart again, in an order of their own, not on a page that can no longer be paid.
        order = order_for_cart(user=user, lines=lines, fingerprint=fingerprint, settled=order)
        if order.checkout_session_id:
            return order  # a twin request made it a moment ago
    return checkout_start(
        order=order, success_url=success_url, cancel_url=cancel_url, customer=customer, stripe_products=stripe_products
    )


def _session_open(session_id: str) -> bool:
    """Whether the customer can still pay on this session. While Stripe cannot say, the client is told to come
    back (503 with `Retry-After`): neither a session paid a moment ago nor a second order for the cart."""
    gw = gateway()
    try:
        session = gw.find_for_client(lambda options: gw.v1.checkout.sessions.retrieve(session_id, options=options))
    except StripeUnavailable as error:
        raise CheckoutUnavailable(f"the session's state is unknown: {error}", error.retry_after) from error
    return session is not None and session.status == "open"


@contextmanager
def canceled_unless_started(order: Order, what: str) -> Iterator[None]:
    """A payment Stripe refused cancels its order (502, with Stripe's words in the log): none is left pending
    without its session or intent. One Stripe did not answer (busy, unreachable: 503 with `Retry-After`) may
    have been made all the same, so its order stays pending: the client's retry gets the same order and asks
    Stripe again with the same key, which answers with what it made; an order no retry comes for is closed by
    a worker (`unstarted.unstarted_orders_close`)."""
    try:
        yield
    except StripeUnavailable as error:
        raise CheckoutUnavailable(f"{what} not started: {error}", error.retry_after) from error
    except (stripe.StripeError, StripeKeySpent) as error:
        refused = error if isinstance(error, StripeKeySpent) else StripeRefused(error)
        _cancel_unless_a_twin_started(order, f"{what} refused by Stripe: {refused}")
        raise refused from error


def _cancel_unless_a_twin_started(order: Order, cause: str) -> None:
    """A twin request (the same cart a moment ago, the same key) may have started the payment meanwhile:
    its order stays, and a retry gets it back."""
    if Order.objects.filter(pk=order.pk).exclude(checkout_session_id=None, payment_intent_id="").exists():
        return
    order_transition(order_id=order.pk, to=OrderStatus.CANCELED, cause=cause)


def checkout_start(
    *, order: Order, success_url: str, cancel_url: str, customer: str, stripe_products: dict[int, str]
) -> Order:
    """Create the order's Checkout Session (once: the key is the order's) for the user's Stripe customer,
    and keep its id and URL.

    If Stripe cannot be reached, or refuses, the order is canceled: none is left pending without a session.
    """
    with canceled_unless_started(order, "checkout"):
        reference = {"order": str(order.pk), NAMESPACE_KEY: installation_namespace()}
        params = {
            "mode": "payment",
            "line_items": _line_items(order, stripe_products),
            "success_url": success_url,
            "cancel_url": cancel_url,
            # For people reading the dashboard; events find the order through the session's id only.
            "client_reference_id": str(order.pk),
            "metadata": reference,
            "payment_intent_data": {"metadata": reference},
            "customer": customer,
        }
        gw = gateway()
        session = gw.call(
            lambda options: gw.v1.checkout.sessions.create(params=params, options=options),
            idempotency_key=f"order:{order.pk}:checkout",
        )
    Order.objects.filter(pk=order.pk).update(
        checkout_session_id=session.id, checkout_url=session.url, stripe_customer_id=customer
    )
    order.refresh_from_db()
    return order


def payment_link_create(*, lines: list[CartLine], created_by) -> PaymentLink:
    """A reusable link; each payment through it becomes an order of its own (see the webhooks)."""
    try:
        line_items = [{"price": ensure_price_in_stripe(line.price), "quantity": line.quantity} for line in lines]
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
    except (StripeUnavailable, CheckoutUnavailable, NotInStripe) as error:
        raise CheckoutUnavailable(str(error), error.retry_after) from error
    except stripe.StripeError as error:
        raise StripeRefused(error) from error
    return PaymentLink.objects.create(
        stripe_id=link.id,
        url=link.url,
        currency=lines[0].price.currency,
        lines=[{"price": line.price.pk, "quantity": line.quantity} for line in lines],
        created_by=created_by,
    )
