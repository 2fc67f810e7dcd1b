"""Each message, rendered in text and HTML from the data at the moment of its event."""

import pytest
from django.db import transaction

from apps.mail.models import MessageKind, MessageState, OutgoingMessage
from apps.payments import signals as payment_signals
from apps.payments.billing.selectors import SubscriptionNews
from apps.payments.orders.lifecycle import CartLine, order_create, order_transition
from apps.payments.orders.models import Order, OrderStatus
from apps.payments.orders.refunds import order_apply_refund
from apps.users import services as users
from tests.mail.helpers import paid_order

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-unusual-passphrase-42"


def only_message(kind: str) -> OutgoingMessage:
    return OutgoingMessage.objects.get(kind=kind)


def test_welcome_greets_the_new_user_by_name():
    user = users.user_create(email="grace@example.com", password=PASSWORD, name="Grace <Hopper>")

    message = only_message(MessageKind.WELCOME)
    assert (message.recipient, message.subject, message.state) == ("grace@example.com", "Welcome to Shop", "queued")
    assert message.idempotency_key == f"welcome:user:{user.pk}"
    assert "Hello Grace <Hopper>," in message.body_text
    assert "Hello Grace &lt;Hopper&gt;," in message.body_html
    assert "grace@example.com" in message.body_text


def test_receipt_lists_lines_quantities_unit_prices_and_total_in_the_orders_currency(customer, cart):
    order = paid_order(user=customer, lines=cart)

    message = only_message(MessageKind.RECEIPT)
    assert message.recipient == "ada@example.com"
    assert message.subject == f"Receipt for order #{order.pk}: €31.99 paid"
    assert "2 x Mug & Saucer <b> at €12.50: €25.00" in message.body_text
    assert "1 x Tea at €6.99: €6.99" in message.body_text
    assert "Total: €31.99" in message.body_text
    assert "Hello Ada," in message.body_text
    html = message.body_html
    assert "Mug &amp; Saucer &lt;b&gt;" in html
    assert "<b>" not in html
    for text in ("€12.50", "€25.00", "€6.99", "€31.99", f"#{order.pk}"):
        assert text in html


def test_receipt_in_a_zero_decimal_currency(customer):
    from apps.catalog import services as catalog

    with transaction.atomic():
        price = catalog.price_create(product=catalog.product_create(name="Sencha"), unit_amount=1500, currency="jpy")
    paid_order(user=customer, lines=[CartLine(price=price, quantity=3)])

    assert "Total: ¥4,500" in only_message(MessageKind.RECEIPT).body_text


def test_the_receipt_keeps_what_was_bought_when_the_catalog_changes_later(customer, cart):
    from apps.catalog import services as catalog

    paid_order(user=customer, lines=cart)
    with transaction.atomic():
        catalog.product_update(product=cart[1].price.product, data={"name": "Green tea"})

    assert "1 x Tea at" in only_message(MessageKind.RECEIPT).body_text


def test_payment_failed_links_to_the_open_checkout_to_try_again(customer, cart):
    order = order_create(user=customer, lines=cart)
    Order.objects.filter(pk=order.pk).update(checkout_url="https://checkout.stripe.com/c/pay/cs_test_1")

    order_transition(order_id=order.pk, to=OrderStatus.FAILED, cause="test")

    message = only_message(MessageKind.PAYMENT_FAILED)
    assert message.subject == f"Payment for order #{order.pk} did not go through"
    assert "€31.99" in message.body_text
    assert "nothing was charged" in message.body_text
    assert "https://checkout.stripe.com/c/pay/cs_test_1" in message.body_text
    assert 'href="https://checkout.stripe.com/c/pay/cs_test_1"' in message.body_html


def test_refund_says_how_much_and_what_remains(customer, cart):
    order = paid_order(user=customer, lines=cart)

    order_apply_refund(order_id=order.pk, stripe_refund_id="re_1", amount=1000, cause="test")
    order_apply_refund(order_id=order.pk, stripe_refund_id="re_2", amount=2199, cause="test")

    partial, full = OutgoingMessage.objects.filter(kind=MessageKind.REFUND).order_by("id")
    assert partial.subject == f"Refund of €10.00 for order #{order.pk}"
    assert "we refunded €10.00" in partial.body_text
    # As it was then: the later refund does not change what the first message says.
    assert "Refunded so far: €10.00 of €31.99; €21.99 remains paid." in partial.body_text
    assert full.subject == f"Refund of €21.99 for order #{order.pk}"
    assert "refunded in full (€31.99)" in full.body_text
    assert "€21.99" in full.body_html


def test_order_canceled_lists_what_was_not_bought(customer, cart):
    order = order_create(user=customer, lines=cart)

    order_transition(order_id=order.pk, to=OrderStatus.CANCELED, cause="test")

    message = only_message(MessageKind.ORDER_CANCELED)
    assert message.subject == f"Order #{order.pk} canceled"
    assert "nothing was charged" in message.body_text
    assert "2 x Mug & Saucer <b>" in message.body_text


SUBSCRIPTION_SIGNALS = (
    payment_signals.subscription_started,
    payment_signals.subscription_renewed,
    payment_signals.subscription_payment_failed,
    payment_signals.subscription_trial_ending,
    payment_signals.subscription_canceled,
)


def subscription_news(user, **changes) -> SubscriptionNews:
    """What payments tells of a subscription (its own journey is in tests/journeys/test_subscriptions.py)."""
    fields = {
        "subscription_id": "sub_1",
        "user": user,
        "plan_names": ["Pro"],
        "status": "active",
        "currency": "eur",
        "amount": 1500,
        "current_period_end": 1_767_268_800,
        "trial_end": 1_767_268_800,
        "invoice_id": "in_1",
        "invoice_number": "ABC-0001",
        "invoice_url": "https://pay.example/i/in_1",
    }
    return SubscriptionNews(**{**fields, **changes})


def test_subscription_messages_say_what_happened_once_per_cause(customer):
    news = subscription_news(customer)
    for _ in range(2):
        payment_signals.subscription_payment_failed.send(sender=None, news=news)
    payment_signals.subscription_payment_failed.send(sender=None, news=subscription_news(customer, invoice_id="in_2"))

    failed = OutgoingMessage.objects.filter(kind=MessageKind.SUBSCRIPTION_PAYMENT_FAILED)
    assert failed.count() == 2
    assert "https://pay.example/i/in_1" in failed.order_by("pk").first().body_text
    assert "15.00" in failed.first().body_text


def test_a_failed_renewal_links_the_portal_to_save_a_card_and_a_3ds_request_asks_to_confirm(customer):
    portal = "https://billing.example/p/login/test_1"
    payment_signals.subscription_payment_failed.send(sender=None, news=subscription_news(customer, portal_url=portal))
    payment_signals.subscription_payment_failed.send(
        sender=None, news=subscription_news(customer, invoice_id="in_2", portal_url=portal, action_required=True)
    )

    declined, confirm = OutgoingMessage.objects.filter(kind=MessageKind.SUBSCRIPTION_PAYMENT_FAILED).order_by("pk")
    assert declined.subject == "Your payment for Pro did not go through"
    assert f"update your card here (we charge it at once):\n{portal}" in declined.body_text
    assert "https://pay.example/i/in_1" in declined.body_text
    assert f'href="{portal}"' in declined.body_html
    assert confirm.subject == "Confirm your payment for Pro"
    assert "confirm the payment here:\nhttps://pay.example/i/in_1" in confirm.body_text
    assert "another card" not in confirm.body_text


def test_every_message_has_a_text_and_an_html_body(customer, cart):
    newcomer = users.user_create(email="new@example.com", password=PASSWORD)
    users.user_request_email_verification(user=newcomer)
    order = paid_order(user=customer, lines=cart)
    order_apply_refund(order_id=order.pk, stripe_refund_id="re_1", amount=100, cause="test")
    other = order_create(user=customer, lines=cart)
    order_transition(order_id=other.pk, to=OrderStatus.FAILED, cause="test")
    order_transition(order_id=other.pk, to=OrderStatus.CANCELED, cause="test")
    news = subscription_news(customer)
    for signal in SUBSCRIPTION_SIGNALS:
        signal.send(sender=None, news=news)

    written = {message.kind: message for message in OutgoingMessage.objects.all()}
    assert set(written) == set(MessageKind.values)
    for message in written.values():
        assert message.state == MessageState.QUEUED
        assert message.body_text.strip()
        assert "{{" not in message.body_text
        assert "{%" not in message.body_text
        assert message.body_html.lstrip().startswith("<!DOCTYPE html>")
        assert "\n" not in message.subject
        assert len(message.subject) < 80


def test_a_guest_order_is_mailed_to_the_address_stripe_gave(cart):
    order = order_create(user=None, lines=cart, email="guest@example.com")

    order_transition(order_id=order.pk, to=OrderStatus.PAID, cause="test")

    message = only_message(MessageKind.RECEIPT)
    assert message.recipient == "guest@example.com"
    assert "Hello," in message.body_text
