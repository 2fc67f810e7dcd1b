"""What each message says and to whom: read the cause as it is now, then write it to the outbox.

One function per kind; receivers call them inside the transaction of the signal.
The idempotency key names the cause, so each message exists once per cause.
"""

import logging
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth import get_user_model

from apps.mail.models import MessageKind, OutgoingMessage
from apps.mail.services import message_queue
from apps.payments.orders.models import Order, OrderRefund, OrderStatus
from apps.users.services import email_verification_token
from config.days import moment

log = logging.getLogger("apps.mail")


def welcome_queue(*, user_id: int) -> OutgoingMessage | None:
    return _queue_for_user(user_id, key=f"welcome:user:{user_id}", kind=MessageKind.WELCOME)


def verification_queue(*, user_id: int, request_id: str) -> OutgoingMessage | None:
    """The link that proves the user owns their (new) address; one message per request."""
    return _queue_for_user(user_id, key=f"verify-email:user:{user_id}:{request_id}", kind=MessageKind.VERIFY_EMAIL)


def _queue_for_user(user_id: int, *, key: str, kind: str) -> OutgoingMessage | None:
    """A message to a user at their address now, with the link that verifies it."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return None
    token = email_verification_token(user=user)
    verify_url = settings.EMAIL_VERIFICATION_URL.replace("{token}", quote(token))
    return message_queue(key=key, kind=kind, recipient=user.email, context={"user": user, "verify_url": verify_url})


def receipt_queue(*, order_id: int) -> OutgoingMessage | None:
    order = _order(order_id)
    return order and _queue_for_order(order, key=f"receipt:order:{order.pk}", kind=MessageKind.RECEIPT)


def payment_failed_queue(*, order_id: int) -> OutgoingMessage | None:
    order = _order(order_id)
    if order is None:
        return None
    # A declined card leaves the Checkout Session open: the same page takes a second try.
    can_retry = order.status in (OrderStatus.PENDING, OrderStatus.FAILED) and bool(order.checkout_url)
    return _queue_for_order(
        order,
        key=f"payment-failed:order:{order.pk}",
        kind=MessageKind.PAYMENT_FAILED,
        retry_url=order.checkout_url if can_retry else "",
    )


def refund_queue(*, order_id: int, refund_id: int) -> OutgoingMessage | None:
    order = _order(order_id)
    refund = OrderRefund.objects.filter(pk=refund_id, order_id=order_id).first()
    if order is None or refund is None:
        return None
    return _queue_for_order(
        order,
        key=f"refund:order:{order.pk}:{refund.pk}",
        kind=MessageKind.REFUND,
        refund=refund,
        fully_refunded=order.amount_remaining == 0,
    )


def order_canceled_queue(*, order_id: int) -> OutgoingMessage | None:
    order = _order(order_id)
    return order and _queue_for_order(order, key=f"canceled:order:{order.pk}", kind=MessageKind.ORDER_CANCELED)


def _order(order_id: int) -> Order | None:
    return Order.objects.select_related("user").prefetch_related("lines").filter(pk=order_id).first()


def _queue_for_order(order: Order, *, key: str, kind: str, **context) -> OutgoingMessage | None:
    # The customer's address now, if they have an account; a guest's is the one Stripe gave.
    recipient = order.user.email if order.user else order.email
    if not recipient:
        log.warning("mail without recipient key=%s order=%s", key, order.pk)
    customer_name = order.user.name if order.user else ""
    return message_queue(
        key=key,
        kind=kind,
        recipient=recipient,
        context={"order": order, "lines": list(order.lines.all()), "customer_name": customer_name, **context},
    )


# --- subscriptions: each message once per cause (the subscription, the invoice, the trial's end) ---------


def subscription_queue(*, news, kind: str) -> OutgoingMessage | None:
    """A message about a user's subscription, from what payments tells of it (`SubscriptionNews`)."""
    cause = {
        MessageKind.SUBSCRIPTION_STARTED: news.subscription_id,
        MessageKind.SUBSCRIPTION_CANCELED: news.subscription_id,
        MessageKind.SUBSCRIPTION_TRIAL_ENDING: f"{news.subscription_id}:{news.trial_end}",
        MessageKind.SUBSCRIPTION_RENEWED: news.invoice_id,
        MessageKind.SUBSCRIPTION_PAYMENT_FAILED: news.invoice_id,
    }[kind]
    return message_queue(
        key=f"{kind}:{cause}",
        kind=kind,
        recipient=news.user.email,
        context={
            "news": news,
            "customer_name": news.user.name,
            "plans": ", ".join(news.plan_names),
            "period_end": moment(news.current_period_end),
            "trial_end": moment(news.trial_end),
        },
    )
