"""Payments: each attempt to pay an order, kept as Stripe tells it.

A payment is one payment intent: a Checkout Session's, or one made for an app. Its row is
written when we create the intent or apply a session, and brought up to date by Stripe's
events (the intent's status and last error, the charge's card, the refunds); reading it
never asks Stripe. An older event never overwrites a newer one, and a payment that
succeeded or was canceled is not moved back by a late event about an earlier attempt.
"""

import logging

from django.db import transaction
from django.utils import timezone

from apps.payments.orders.locks import order_lock
from apps.payments.orders.models import PAYMENT_SETTLED, Order, Payment, PaymentStatus

log = logging.getLogger("apps.payments.orders")

# Stripe's intent statuses, as a payer or an operator would name them.
INTENT_STATUS = {
    "requires_payment_method": PaymentStatus.PENDING,
    "requires_confirmation": PaymentStatus.PENDING,
    "requires_action": PaymentStatus.PENDING,
    "requires_capture": PaymentStatus.PROCESSING,
    "processing": PaymentStatus.PROCESSING,
    "succeeded": PaymentStatus.SUCCEEDED,
    "canceled": PaymentStatus.CANCELED,
}


def payment_status_of(intent: dict) -> str:
    """An intent back at `requires_payment_method` with an error is a failed attempt, not a fresh one."""
    if intent.get("status") == "requires_payment_method" and intent.get("last_payment_error"):
        return PaymentStatus.FAILED
    return INTENT_STATUS.get(intent.get("status") or "", PaymentStatus.PENDING)


def _locked_payment(*, order: Order, payment_intent_id: str, amount: int, currency: str, session_id: str) -> Payment:
    order_lock(order.pk)  # the order first, then its payment (`locks`)
    payment, _ = Payment.objects.select_for_update().get_or_create(
        payment_intent_id=payment_intent_id,
        defaults={"order": order, "amount": amount, "currency": currency, "checkout_session_id": session_id},
    )
    if session_id and not payment.checkout_session_id:
        payment.checkout_session_id = session_id
    return payment


def _move(payment: Payment, status: str) -> None:
    if payment.status in PAYMENT_SETTLED or payment.status == status:
        return
    payment.status = status
    if status == PaymentStatus.SUCCEEDED:
        payment.succeeded_at = timezone.now()
    elif status == PaymentStatus.FAILED:
        payment.failed_at = timezone.now()


def _note_card(payment: Payment, card: dict | None) -> None:
    if card:
        payment.card_brand = (card.get("brand") or "")[:20]
        payment.card_last4 = (card.get("last4") or "")[:4]


def _note_failure(payment: Payment, *, code: str, decline_code: str, message: str) -> None:
    payment.failure_code = (code or "")[:100]
    payment.decline_code = (decline_code or "")[:100]
    payment.failure_message = (message or "")[:500]


@transaction.atomic
def payment_record(*, order: Order, intent: dict, at: int = 0, checkout_session_id: str = "") -> Payment:
    """The payment of this intent, created or brought in line with what Stripe says of it at `at`
    (an event's `created`; 0 for what we were told directly, which is never older than an event)."""
    payment = _locked_payment(
        order=order,
        payment_intent_id=intent["id"],
        amount=intent.get("amount") or 0,
        currency=(intent.get("currency") or order.currency).lower(),
        session_id=checkout_session_id,
    )
    if payment.order_id != order.pk:  # an id of ours names one order only; say so rather than move money
        log.error(
            "payment names another order intent=%s payment_order=%s order=%s", intent["id"], payment.order_id, order.pk
        )
        return payment
    if at and at < payment.stripe_event_at:
        payment.save()
        return payment
    payment.stripe_event_at = max(at, payment.stripe_event_at)
    payment.stripe_status = (intent.get("status") or "")[:40]
    error = intent.get("last_payment_error")
    if error:
        _note_failure(
            payment,
            code=error.get("code") or "",
            decline_code=error.get("decline_code") or "",
            message=error.get("message") or "",
        )
        method = error.get("payment_method")
        _note_card(payment, method.get("card") if isinstance(method, dict) else None)
    _move(payment, payment_status_of(intent))
    payment.save()
    return payment


@transaction.atomic
def payment_record_session(*, order: Order, session: dict) -> Payment | None:
    """A Checkout Session that was paid (or whose delayed payment runs) names its intent: its payment."""
    if not session.get("payment_intent"):
        return None
    payment = _locked_payment(
        order=order,
        payment_intent_id=session["payment_intent"],
        amount=session.get("amount_total") or 0,
        currency=(session.get("currency") or order.currency).lower(),
        session_id=session["id"],
    )
    if payment.order_id == order.pk:
        if session.get("payment_status") in ("paid", "no_payment_required"):
            _move(payment, PaymentStatus.SUCCEEDED)
        elif payment.status == PaymentStatus.PENDING:  # a delayed payment runs; a failed one stays failed
            _move(payment, PaymentStatus.PROCESSING)
    payment.save()
    return payment


@transaction.atomic
def payment_note_charge(*, charge: dict) -> Payment | None:
    """The card a charge was made with, and why it failed; None when no payment of ours has its intent."""
    found = Payment.objects.filter(payment_intent_id=charge.get("payment_intent") or "").first()
    if found is None:
        return None
    order_lock(found.order_id)
    payment = Payment.objects.select_for_update().get(pk=found.pk)
    if payment.status in PAYMENT_SETTLED and charge.get("status") != "succeeded":
        return payment  # a late word about an earlier card: the card that paid stays on record
    _note_card(payment, (charge.get("payment_method_details") or {}).get("card"))
    if charge.get("status") == "failed":
        outcome = charge.get("outcome") or {}
        _note_failure(
            payment,
            code=charge.get("failure_code") or "",
            decline_code=(outcome.get("reason") or "") if outcome.get("type") == "issuer_declined" else "",
            message=charge.get("failure_message") or "",
        )
    payment.save()
    return payment


def payment_note_refunds(*, order: Order) -> None:
    """What went back of an order went back of the payment that paid it (the caller holds the order's lock)."""
    payment = Payment.objects.select_for_update().filter(order=order, payment_intent_id=order.payment_intent_id).first()
    if payment is None:
        return
    payment.amount_refunded = min(order.amount_refunded, payment.amount)
    if payment.amount_refunded:
        payment.status = (
            PaymentStatus.REFUNDED if payment.amount_refunded >= payment.amount else PaymentStatus.PARTIALLY_REFUNDED
        )
    payment.save()
