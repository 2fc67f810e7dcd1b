"""Books that balance: our paid orders, payments and refunds compared with Stripe's charges, refunds and
balance transactions over a time range.

Stripe is read page by page through the gateway, so the check spends the same rate budget as
everything else and never holds more than a page of Stripe's objects beyond what it compares. What
disagrees is stored as drift on the check (an operator sees it in the admin and `payments/stats`);
nothing is repaired here: money that disagrees is for a person to look at.
"""

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.payments.gateway.client import gateway
from apps.payments.gateway.installation import of_another_installation
from apps.payments.orders.models import (
    BooksCheck,
    BooksDrift,
    DriftKind,
    Order,
    OrderRefund,
    OrderStatus,
    Payment,
    PaymentStatus,
)
from config.errors import Unavailable

log = logging.getLogger("apps.payments.orders")

# Orders Stripe took money for, whatever happened since.
CHARGED_STATUSES = (OrderStatus.PAID, OrderStatus.REVIEW, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED)
PAYMENT_TOOK = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)
PAGE = 100


@dataclass
class _Findings:
    drifts: list[BooksDrift] = field(default_factory=list)
    orders: int = 0
    charges: int = 0
    refunds: int = 0

    def add(self, kind: str, detail: str, **about) -> None:
        self.drifts.append(BooksDrift(kind=kind, detail=detail[:255], **about))


def _pages(list_page: Callable[[dict, dict], object], params: dict) -> Iterator[dict]:
    """Every object of a Stripe list, one budgeted call per page."""
    gw = gateway()
    after: dict = {}
    while True:
        page = gw.call(lambda options, after=after: list_page({**params, "limit": PAGE, **after}, options))
        for obj in page.data:
            yield obj.to_dict()
        if not page.has_more or not page.data:
            return
        after = {"starting_after": page.data[-1].id}


def batched(items: Iterator[dict], size: int) -> Iterator[list[dict]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _range(since: datetime, until: datetime) -> dict:
    """Stripe counts whole seconds: the second `until` falls in counts (it began before `until`)."""
    return {"created": {"gte": math.floor(since.timestamp()), "lt": math.ceil(until.timestamp())}}


def reconcile_money(*, since: datetime, until: datetime | None = None) -> BooksCheck:
    """Compare the books over [since, until) and store what disagrees; the check itself says how far it got."""
    # What Stripe did a moment ago may still be on its way here as an event: not drift yet.
    settled = timezone.now() - timedelta(seconds=settings.BOOKS_SETTLE_SECONDS)
    until = min(until or settled, settled)
    check = BooksCheck.objects.create(since=since, until=until)
    findings = _Findings()
    try:
        _check_charges(findings, since, until)
        _check_refunds(findings, since, until)
    except (stripe.StripeError, Unavailable) as error:  # what was found so far is kept, and the check says so
        check.error = f"{type(error).__name__}: {error}"[:2000]
        log.error("books check stopped check=%s error=%s", check.pk, check.error)
    with transaction.atomic():
        for drift in findings.drifts:
            drift.books_check = check
        BooksDrift.objects.bulk_create(findings.drifts)
        check.orders_checked, check.charges_checked = findings.orders, findings.charges
        check.refunds_checked, check.drift_count = findings.refunds, len(findings.drifts)
        check.finished_at = timezone.now()
        check.save()
    if findings.drifts:
        log.error("books disagree with Stripe check=%s drifts=%s", check.pk, len(findings.drifts))
    return check


def _check_charges(findings: _Findings, since: datetime, until: datetime) -> None:
    """Each order paid in the range has a charge of its amount and currency (whose balance transaction
    agrees, and whose payment here says what it took and what went back); each charge Stripe made in the
    range has an order."""
    orders = {
        order.payment_intent_id: order
        for order in Order.objects.filter(status__in=CHARGED_STATUSES, paid_at__gte=since, paid_at__lt=until)
        .exclude(payment_intent_id="")
        .only("pk", "payment_intent_id", "amount_charged", "currency_charged", "amount_refunded")
    }
    findings.orders = len(orders)
    payments = {payment.payment_intent_id: payment for payment in Payment.objects.filter(payment_intent_id__in=orders)}
    gw = gateway()
    charges = _pages(
        lambda params, options: gw.v1.charges.list(params=params, options=options),
        {**_range(since, until), "expand": ["data.balance_transaction"]},
    )
    strangers: list[dict] = []
    for charge in charges:
        if charge.get("status") != "succeeded":
            continue
        findings.charges += 1
        order = orders.pop(charge.get("payment_intent") or "", None)
        if order is not None:
            _compare_charge(findings, order, charge, payments.get(order.payment_intent_id))
        elif not of_another_installation(charge.get("metadata")):
            strangers.append(charge)
    _charges_without_order(findings, strangers)
    # Paid in the range by a charge made just before it, or by none at all: asked one by one.
    for intent_id, order in orders.items():
        found = gw.call(
            lambda options, intent_id=intent_id: gw.v1.charges.list(
                params={"payment_intent": intent_id, "expand": ["data.balance_transaction"]}, options=options
            )
        )
        paid = [c.to_dict() for c in found.data if c.status == "succeeded"]
        if paid:
            _compare_charge(findings, order, paid[0], payments.get(intent_id))
        else:
            findings.add(
                DriftKind.CHARGE_MISSING,
                f"order {order.pk} is paid here, but Stripe holds no successful charge of {intent_id}",
                order=order,
                stripe_id=intent_id,
                currency=order.currency_charged,
                ours=order.amount_charged,
            )


def _compare_charge(findings: _Findings, order: Order, charge: dict, payment: Payment | None) -> None:
    took, currency = charge.get("amount_captured") or charge.get("amount"), charge.get("currency")
    if payment is not None:
        _compare_payment(findings, order, charge, payment, took=took, currency=currency)
    if (took, currency) != (order.amount_charged, order.currency_charged):
        findings.add(
            DriftKind.AMOUNT_MISMATCH,
            f"order {order.pk}: {order.amount_charged} {order.currency_charged} here, {took} {currency} in Stripe",
            order=order,
            stripe_id=charge["id"],
            currency=currency or "",
            ours=order.amount_charged,
            stripes=took,
        )
    balance = charge.get("balance_transaction")
    if isinstance(balance, dict) and balance.get("currency") == currency and balance.get("amount") != took:
        findings.add(
            DriftKind.BALANCE_MISMATCH,
            f"charge {charge['id']} of {took} {currency} has a balance transaction of {balance.get('amount')}",
            order=order,
            stripe_id=charge["id"],
            currency=currency or "",
            ours=took,
            stripes=balance.get("amount"),
        )


def _compare_payment(
    findings: _Findings, order: Order, charge: dict, payment: Payment, *, took: int, currency: str
) -> None:
    """The payment that paid the order (what `/api/v1/payments` shows) took what its charge took, in its
    currency, and says as much went back as the order does (refunds missing on either side are the refund
    comparison's to report, once)."""
    went_back = min(order.amount_refunded, payment.amount)
    ours = (payment.status in PAYMENT_TOOK, payment.amount, payment.currency, payment.amount_refunded)
    if ours == (True, took, currency, went_back):
        return
    findings.add(
        DriftKind.PAYMENT_MISMATCH,
        f"payment {payment.pk} of order {order.pk} is {payment.status}, took {payment.amount} {payment.currency} "
        f"and gave back {payment.amount_refunded}; Stripe took {took} {currency} ({charge['id']}) and the order "
        f"gave back {order.amount_refunded}",
        order=order,
        stripe_id=charge["id"],
        currency=currency or "",
        ours=payment.amount_refunded if payment.amount == took else payment.amount,
        stripes=went_back if payment.amount == took else took,
    )


def _charges_without_order(findings: _Findings, charges: list[dict]) -> None:
    """Charges of the range with no order paid in it: fine when an order of ours that names the intent was
    paid at another time; drift when that order is not paid here (its event lost), or when no order of
    ours names the intent at all (money no order accounts for)."""
    # A charge without an intent names no order: never the orders whose intent is not known yet (empty).
    intents = [c["payment_intent"] for c in charges if c.get("payment_intent")]
    orders = {
        order.payment_intent_id: order
        for order in Order.objects.filter(payment_intent_id__in=intents).only("pk", "status", "payment_intent_id")
    }
    for payment in Payment.objects.filter(payment_intent_id__in=intents).select_related("order"):
        orders.setdefault(payment.payment_intent_id, payment.order)
    for charge in charges:
        order = orders.get(charge.get("payment_intent") or "")  # no order is keyed by an empty intent
        if order is not None and order.status in CHARGED_STATUSES:
            continue
        if order is not None:
            findings.add(
                DriftKind.CHARGED_UNPAID,
                f"Stripe took {charge.get('amount')} {charge.get('currency')} ({charge['id']}) for order {order.pk}, "
                f"which is {order.status} here",
                order=order,
                stripe_id=charge["id"],
                currency=charge.get("currency") or "",
                stripes=charge.get("amount"),
            )
            continue
        findings.add(
            DriftKind.ORDER_MISSING,
            f"Stripe took {charge.get('amount')} {charge.get('currency')} ({charge['id']}) and no order here says so",
            stripe_id=charge["id"],
            currency=charge.get("currency") or "",
            stripes=charge.get("amount"),
        )


def _check_refunds(findings: _Findings, since: datetime, until: datetime) -> None:
    """Each refund Stripe made in the range of one of our orders is recorded here, for the same amount;
    each refund recorded here in the range exists in Stripe."""
    gw = gateway()
    recorded = {
        refund.stripe_refund_id: refund
        for refund in OrderRefund.objects.filter(created_at__gte=since, created_at__lt=until).select_related("order")
    }
    seen: set[str] = set()
    refunds = _pages(lambda params, options: gw.v1.refunds.list(params=params, options=options), _range(since, until))
    for batch in batched(refunds, PAGE):
        batch = [refund for refund in batch if refund.get("status") in ("succeeded", "pending")]
        orders = {
            order.payment_intent_id: order
            for order in Order.objects.filter(
                payment_intent_id__in=[r.get("payment_intent") or "" for r in batch]
            ).exclude(payment_intent_id="")
        }
        earlier = OrderRefund.objects.filter(stripe_refund_id__in=[r["id"] for r in batch]).in_bulk(
            field_name="stripe_refund_id"
        )
        for refund in batch:
            order = orders.get(refund.get("payment_intent") or "")
            if order is None:
                continue  # not a refund of an order of ours (a stranger's charge is drift already)
            findings.refunds += 1
            seen.add(refund["id"])
            _compare_refund(findings, order, refund, earlier.get(refund["id"]))
    for refund_id, ours in recorded.items():
        if refund_id in seen:
            continue
        findings.refunds += 1
        try:
            found = gw.call(lambda options, refund_id=refund_id: gw.v1.refunds.retrieve(refund_id, options=options))
        except stripe.InvalidRequestError:
            found = None
        if found is None or found.status not in ("succeeded", "pending"):
            findings.add(
                DriftKind.REFUND_MISSING,
                f"refund {refund_id} of order {ours.order_id} is recorded here, Stripe holds none",
                order=ours.order,
                stripe_id=refund_id,
                currency=ours.order.currency,
                ours=ours.amount,
            )
        else:
            _compare_refund(findings, ours.order, found.to_dict(), ours)


def _compare_refund(findings: _Findings, order: Order, refund: dict, ours: OrderRefund | None) -> None:
    if ours is None:
        findings.add(
            DriftKind.REFUND_NOT_RECORDED,
            f"Stripe refunded {refund.get('amount')} {refund.get('currency')} of order {order.pk}; not recorded here",
            order=order,
            stripe_id=refund["id"],
            currency=refund.get("currency") or "",
            stripes=refund.get("amount"),
        )
    elif ours.amount != refund.get("amount"):
        findings.add(
            DriftKind.REFUND_AMOUNT_MISMATCH,
            f"refund {refund['id']} of order {order.pk}: {ours.amount} here, {refund.get('amount')} in Stripe",
            order=order,
            stripe_id=refund["id"],
            currency=refund.get("currency") or "",
            ours=ours.amount,
            stripes=refund.get("amount"),
        )
