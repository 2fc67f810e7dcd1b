"""Billing: `/v1/subscriptions`, `/v1/invoices`, `/v1/test_helpers/test_clocks`, `/v1/billing_portal/sessions`,
and the renewals, retries and cancellations that time brings.

Time passes in two ways, as in Stripe: by the wall clock for customers without a test clock
(a background loop), and by `advance` for the customers of a test clock. Either way one
function, `advance_subscription`, walks a subscription through what is due, in order:
"trial ends in 3 days", "renewal in 7 days", retries of a failed invoice, and the end of a
period (a renewal invoice, or the end of a subscription set to cancel at period end).

A failed renewal follows a custom retry schedule, not Smart Retries (which pick their own
moments, by default up to 8 tries within 2 weeks): the subscription goes `past_due`, the
invoice is retried 3, 5 and 7 days after the first failure, and when the last retry fails the
subscription is canceled, as "cancel the subscription" in Stripe's subscription settings does.
A card saved in the portal pays what is open.
"""

import calendar
import copy
from datetime import UTC, datetime

from . import api_payments
from .errors import ParamError, StripeError, no_such
from .listing import paginate
from .params import apply_metadata, as_dict, as_list, boolean, choice, integer, string
from .routing import Call, Router
from .store import Store, new_id, now

router = Router()

DAY = 86400
TRIAL_WILL_END_BEFORE = 3 * DAY  # Stripe sends `customer.subscription.trial_will_end` 3 days ahead
UPCOMING_BEFORE = 7 * DAY  # and `invoice.upcoming` as many days ahead as the account says (7 by default)
RETRY_AFTER_DAYS = (3, 5, 7)  # a custom retry schedule: days after the first failure; then it is canceled
PORTAL_CONFIGURATION = "bpc_1EmulatorDefaultPortal"
# The portal's login page (Stripe's "customer portal link"): a customer gives their email and reaches their portal.
PORTAL_LOGIN_PAGE = "login_test_1EmulatorPortal"
LIVE_STATUSES = ("trialing", "active", "past_due", "incomplete", "unpaid")


# --- time ---------------------------------------------------------------------------------------------


def add_interval(moment: int, interval: str, count: int) -> int:
    """`moment` moved on by `count` intervals; a month keeps its day, or the last one (Jan 31 -> Feb 28)."""
    if interval == "day":
        return moment + count * DAY
    if interval == "week":
        return moment + count * 7 * DAY
    months = count * (12 if interval == "year" else 1)
    start = datetime.fromtimestamp(moment, UTC)
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def customer_time(store: Store, customer_id: str | None) -> int:
    """Now, for a customer: its test clock's frozen time, or the wall clock."""
    customer = store.get("customer", customer_id) if customer_id else None
    clock_id = (customer or {}).get("test_clock")
    clock = store.get("test_helpers.test_clock", clock_id) if clock_id else None
    return clock["frozen_time"] if clock else now()


# --- payment methods saved on a customer ----------------------------------------------------------------


def save_card(store: Store, customer: dict, card_name: str, emit) -> dict:
    """Attach one of Stripe's test cards to the customer (a card the issuer refuses is not attached)."""
    card = api_payments.TEST_CARDS.get(card_name)
    if card is None:
        raise StripeError(400, f"No such PaymentMethod: '{card_name}'", code="resource_missing", param="payment_method")
    if card.decline_code and not card.declines_later:
        raise StripeError(
            402,
            api_payments.decline_message(card.decline_code),
            type="card_error",
            code="card_declined",
            extra={"decline_code": card.decline_code},
        )
    method = api_payments.new_payment_method(store, card, customer["id"])
    emit("payment_method.attached", method)
    return method


def make_default_card(store: Store, customer: dict, method: dict, emit) -> None:
    """The card the customer's invoices are paid with from now on, for each subscription too."""
    settings = customer["invoice_settings"]
    if settings["default_payment_method"] != method["id"]:
        previous = {"invoice_settings": copy.deepcopy(settings)}
        settings["default_payment_method"] = method["id"]
        emit("customer.updated", customer, previous)
    for sub in _subscriptions_of(store, customer["id"]):
        if sub["status"] in LIVE_STATUSES and sub["default_payment_method"] != method["id"]:
            previous = {"default_payment_method": sub["default_payment_method"]}
            sub["default_payment_method"] = method["id"]
            emit("customer.subscription.updated", sub, previous)


def pay_open_invoices(store: Store, customer_id: str, emit) -> None:
    """A new card pays what is still owed right away, as Stripe does after a portal update."""
    at = customer_time(store, customer_id)
    for invoice in store.newest_first("invoice"):
        if invoice["customer"] == customer_id and invoice["status"] == "open":
            pay_invoice(store, invoice, emit, at=at)


def _subscriptions_of(store: Store, customer_id: str) -> list[dict]:
    return [sub for sub in store.objects["subscription"].values() if sub["customer"] == customer_id]


# --- subscriptions ---------------------------------------------------------------------------------------


def _item(subscription_id: str, price: dict, quantity: int, start: int, end: int) -> dict:
    recurring = price["recurring"]
    return {
        "id": new_id("subscription_item"),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": start,
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": {},
        "plan": {
            "id": price["id"],
            "object": "plan",
            "active": price["active"],
            "amount": price["unit_amount"],
            "amount_decimal": str(price["unit_amount"]),
            "billing_scheme": "per_unit",
            "created": price["created"],
            "currency": price["currency"],
            "interval": recurring["interval"],
            "interval_count": recurring["interval_count"],
            "livemode": False,
            "metadata": price["metadata"],
            "meter": None,
            "nickname": None,
            "product": price["product"],
            "tiers_mode": None,
            "transform_usage": None,
            "trial_period_days": recurring.get("trial_period_days"),
            "usage_type": "licensed",
        },
        "price": copy.deepcopy(price),
        "quantity": quantity,
        "subscription": subscription_id,
        "tax_rates": [],
    }


def new_subscription(
    store: Store,
    *,
    customer: dict,
    lines: list[dict],
    currency: str,
    trial_days: int | None,
    metadata: dict,
    payment_method: str | None,
) -> dict:
    """A subscription starting now (the customer's time): trialing if it has a trial, else incomplete
    until its first invoice is paid."""
    start = customer_time(store, customer["id"])
    recurring = lines[0]["price"]["recurring"]
    trial_end = start + trial_days * DAY if trial_days else None
    period_end = trial_end or add_interval(start, recurring["interval"], recurring["interval_count"])
    sub_id = new_id("subscription")
    sub = {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": period_end if trial_end else start,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": None, "type": "classic"},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": start,
        "currency": currency,
        "customer": customer["id"],
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": payment_method,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": [_item(sub_id, line["price"], line["quantity"], start, period_end) for line in lines],
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": metadata,
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": start,
        "status": "trialing" if trial_end else "incomplete",
        "test_clock": customer.get("test_clock"),
        "transfer_data": None,
        "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": start if trial_end else None,
    }
    store.add(sub)
    store.emit("customer.subscription.created", sub)
    invoice = new_invoice(
        store,
        sub,
        "subscription_create",
        [_period_line(item, trial=bool(trial_end)) for item in sub["items"]["data"]],
        at=start,
    )
    pay_invoice(store, invoice, store.emit, at=start)
    return sub


def _period_end(sub: dict) -> int:
    return sub["items"]["data"][0]["current_period_end"]


def _period_start(sub: dict) -> int:
    return sub["items"]["data"][0]["current_period_start"]


def _set_period(sub: dict, start: int, end: int) -> None:
    for item in sub["items"]["data"]:
        item["current_period_start"], item["current_period_end"] = start, end


def _end(store: Store, sub: dict, at: int, reason: str) -> None:
    """The subscription is over: canceled now, at the end of its period, or after its retries failed."""
    previous = {"status": sub["status"], "ended_at": None, "canceled_at": sub["canceled_at"]}
    sub.update(status="canceled", ended_at=at, canceled_at=sub["canceled_at"] or at)
    sub["cancellation_details"]["reason"] = reason
    for invoice in _open_invoices(store, sub["id"]):
        invoice["next_payment_attempt"] = None
    store.emit("customer.subscription.deleted", sub, previous)


def _open_invoices(store: Store, subscription_id: str) -> list[dict]:
    return [
        invoice
        for invoice in store.objects["invoice"].values()
        if invoice["status"] == "open" and subscription_of(invoice) == subscription_id
    ]


def _renew(store: Store, sub: dict, at: int) -> None:
    """The period ended: a new one starts and is invoiced (the trial, if any, is over)."""
    recurring = sub["items"]["data"][0]["price"]["recurring"]
    start = _period_end(sub)
    end = add_interval(start, recurring["interval"], recurring["interval_count"])
    previous = {"items": copy.deepcopy(sub["items"]), "status": sub["status"], "latest_invoice": sub["latest_invoice"]}
    _set_period(sub, start, end)
    if sub["status"] == "trialing":
        sub["status"] = "active"
    lines = [_period_line(item) for item in sub["items"]["data"]] + store.pending_invoice_items.pop(sub["id"], [])
    invoice = new_invoice(store, sub, "subscription_cycle", lines, at=at, emit_subscription_update=previous)
    pay_invoice(store, invoice, store.emit, at=at)


def _due(store: Store, sub: dict) -> list[tuple[int, str]]:
    """What is due for this subscription, and when."""
    if sub["status"] in ("canceled", "incomplete_expired", "incomplete"):
        return []
    marks = store.billing_marks.setdefault(sub["id"], {})
    due = []
    end = _period_end(sub)
    if sub["status"] == "trialing" and sub["trial_end"] and not marks.get("trial_will_end"):
        due.append((sub["trial_end"] - TRIAL_WILL_END_BEFORE, "trial_will_end"))
    if not sub["cancel_at_period_end"] and end - UPCOMING_BEFORE > _period_start(sub) and marks.get("upcoming") != end:
        due.append((end - UPCOMING_BEFORE, "upcoming"))
    for invoice in _open_invoices(store, sub["id"]):
        if invoice["next_payment_attempt"]:
            due.append((invoice["next_payment_attempt"], f"retry:{invoice['id']}"))
    due.append((end, "period_end"))
    return due


def advance_subscription(store: Store, sub: dict, until: int) -> None:
    """Everything due for the subscription up to `until`, in the order it falls due."""
    while True:
        due = [step for step in _due(store, sub) if step[0] <= until]
        if not due:
            return
        at, what = min(due)
        marks = store.billing_marks.setdefault(sub["id"], {})
        if what == "trial_will_end":
            marks["trial_will_end"] = True
            store.emit("customer.subscription.trial_will_end", sub)
        elif what == "upcoming":
            marks["upcoming"] = _period_end(sub)
            store.emit("invoice.upcoming", _upcoming_invoice(store, sub, at))
        elif what.startswith("retry:"):
            pay_invoice(store, store.get("invoice", what.removeprefix("retry:")), store.emit, at=at)
        elif sub["cancel_at_period_end"] or (sub["cancel_at"] and sub["cancel_at"] <= at):
            _end(store, sub, at, "cancellation_requested")
        else:
            _renew(store, sub, at)


def advance_due_subscriptions(store: Store) -> None:
    """The wall clock's part: subscriptions of customers without a test clock."""
    moment = now()
    for sub in list(store.objects["subscription"].values()):
        if not sub["test_clock"]:
            advance_subscription(store, sub, moment)


def _cancel_at_period_end(store: Store, sub: dict, ending: bool) -> dict:
    """The fields that set (or take back) a cancellation at the end of the current period."""
    at = customer_time(store, sub["customer"])
    return {
        "cancel_at_period_end": ending,
        "cancel_at": _period_end(sub) if ending else None,
        "canceled_at": at if ending else None,
    }


def set_cancel_at_period_end(store: Store, sub: dict, ending: bool, emit) -> None:
    if sub["status"] == "canceled" or sub["cancel_at_period_end"] == ending:
        return
    changes = _cancel_at_period_end(store, sub, ending)
    previous = {key: sub[key] for key in changes}
    sub.update(changes)
    emit("customer.subscription.updated", sub, previous)


def change_plan(store: Store, sub: dict, item: dict, price: dict, quantity: int, proration: str, emit) -> None:
    """Move an item to another price of the same interval; Stripe's proration for the rest of the period:
    credit for the unused time of the old price, a charge for the remaining time of the new one."""
    old, new = item["price"]["recurring"], price["recurring"]
    if (old["interval"], old["interval_count"]) != (new["interval"], new["interval_count"]):
        raise ParamError(
            "This emulator changes a subscription only to a price of the same billing interval.", param="items"
        )
    at = customer_time(store, sub["customer"])
    start, end = _period_start(sub), _period_end(sub)
    remaining = max(0.0, min(1.0, (end - at) / (end - start))) if end > start else 0.0
    previous = {"items": copy.deepcopy(sub["items"])}
    lines = []
    if proration != "none" and sub["status"] != "trialing" and remaining > 0:
        lines = [
            _proration_line(item["price"], item["quantity"], -remaining, at, end, "Unused time on"),
            _proration_line(price, quantity, remaining, at, end, "Remaining time on"),
        ]
    changed = _item(sub["id"], price, quantity, start, end)
    changed.update(id=item["id"], created=item["created"], metadata=item["metadata"])
    item.clear()
    item.update(changed)
    emit("customer.subscription.updated", sub, previous)
    if not lines:
        return
    if proration == "always_invoice":
        invoice = new_invoice(store, sub, "subscription_update", lines, at=at)
        pay_invoice(store, invoice, emit, at=at)
    else:
        store.pending_invoice_items.setdefault(sub["id"], []).extend(lines)


# --- invoices -----------------------------------------------------------------------------------------


def subscription_of(invoice: dict) -> str | None:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return details.get("subscription")


def _period_line(item: dict, *, trial: bool = False) -> dict:
    price = item["price"]
    amount = 0 if trial else price["unit_amount"] * item["quantity"]
    label = "Trial period for" if trial else f"{item['quantity']} x"
    return {
        "amount": amount,
        "currency": price["currency"],
        "description": f"{label} {price.get('nickname') or price['product']}",
        "period": {"start": item["current_period_start"], "end": item["current_period_end"]},
        "price": price["id"],
        "product": price["product"],
        "quantity": item["quantity"],
        "proration": False,
        "subscription_item": item["id"],
    }


def _proration_line(price: dict, quantity: int, share: float, start: int, end: int, label: str) -> dict:
    return {
        "amount": round(price["unit_amount"] * quantity * share),
        "currency": price["currency"],
        "description": f"{label} {price.get('nickname') or price['product']}",
        "period": {"start": start, "end": end},
        "price": price["id"],
        "product": price["product"],
        "quantity": quantity,
        "proration": True,
        "subscription_item": None,
    }


def _line_item(invoice_id: str, subscription_id: str, line: dict) -> dict:
    return {
        "id": new_id("line_item"),
        "object": "line_item",
        "amount": line["amount"],
        "currency": line["currency"],
        "description": line["description"],
        "discount_amounts": [],
        "discountable": not line["proration"],
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": {},
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": line["proration"],
                "proration_details": {"credited_items": None},
                "subscription": subscription_id,
                "subscription_item": line["subscription_item"],
            },
            "type": "subscription_item_details",
        },
        "period": line["period"],
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": line["price"], "product": line["product"]},
            "type": "price_details",
            "unit_amount_decimal": str(line["amount"] // max(line["quantity"], 1)),
        },
        "quantity": line["quantity"],
        "quantity_decimal": str(line["quantity"]),
        "subscription": subscription_id,
        "subtotal": line["amount"],
        "taxes": [],
    }


def _invoice_body(store: Store, sub: dict, invoice_id: str, reason: str, lines: list[dict], at: int) -> dict:
    customer = store.get("customer", sub["customer"])
    total = sum(line["amount"] for line in lines)
    # Credit left on the customer's balance (a downgrade's proration) pays first.
    balance = customer["balance"]
    due = max(0, total + balance)
    period = (lines[0]["period"]["start"], lines[0]["period"]["end"]) if lines else (at, at)
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": store.account["business_profile"]["name"],
        "account_tax_ids": None,
        "amount_due": due,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": due,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": True,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": reason,
        "collection_method": "charge_automatically",
        "created": at,
        "currency": sub["currency"],
        "custom_fields": None,
        "customer": customer["id"],
        "customer_account": None,
        "customer_address": customer["address"],
        "customer_email": customer["email"],
        "customer_name": customer["name"],
        "customer_phone": customer["phone"],
        "customer_shipping": customer["shipping"],
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": f"{store.public_url}/i/{invoice_id}",
        "invoice_pdf": f"{store.public_url}/i/{invoice_id}/pdf",
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {
            "object": "list",
            "data": [_line_item(invoice_id, sub["id"], line) for line in lines],
            "has_more": False,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": {
            "quote_details": None,
            "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"]},
            "type": "subscription_details",
        },
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "period_end": period[1] if reason == "subscription_update" else period[0],
        "period_start": at if reason == "subscription_update" else period[0],
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": balance,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "test_clock": sub["test_clock"],
        "total": total,
        "total_discount_amounts": [],
        "total_excluding_tax": total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": at,
    }


def new_invoice(
    store: Store, sub: dict, reason: str, lines: list[dict], *, at: int, emit_subscription_update: dict | None = None
) -> dict:
    """Draft, then finalize, the invoice of a period (or of a plan change): Stripe numbers it and opens it."""
    invoice = store.add(_invoice_body(store, sub, new_id("invoice"), reason, lines, at))
    customer = store.get("customer", sub["customer"])
    store.emit("invoice.created", invoice)
    previous_sub = {**(emit_subscription_update or {}), "latest_invoice": sub["latest_invoice"]}
    sub["latest_invoice"] = invoice["id"]
    store.emit("customer.subscription.updated", sub, previous_sub)
    # The customer's credit is spent on this invoice; what is left of it stays on the balance.
    customer["balance"] = min(0, customer["balance"] + invoice["total"])
    invoice["ending_balance"] = customer["balance"]
    invoice.update(
        status="open",
        number=f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}",
        effective_at=at,
    )
    invoice["status_transitions"]["finalized_at"] = at
    customer["next_invoice_sequence"] += 1
    store.emit("invoice.finalized", invoice, {"status": "draft", "number": None})
    return invoice


def _upcoming_invoice(store: Store, sub: dict, at: int) -> dict:
    """What `invoice.upcoming` carries: the next renewal's invoice as it would be, with no id."""
    start = _period_end(sub)
    recurring = sub["items"]["data"][0]["price"]["recurring"]
    end = add_interval(start, recurring["interval"], recurring["interval_count"])
    lines = []
    for item in sub["items"]["data"]:
        line = _period_line(item)
        line["period"] = {"start": start, "end": end}
        lines.append(line)
    upcoming = _invoice_body(store, sub, "", "upcoming", lines + store.pending_invoice_items.get(sub["id"], []), at)
    upcoming.pop("id")
    upcoming.update(hosted_invoice_url=None, invoice_pdf=None, next_payment_attempt=start)
    return upcoming


def _card_of(store: Store, invoice: dict) -> dict | None:
    """The payment method an invoice is charged to: its subscription's, else the customer's default."""
    sub = store.get("subscription", subscription_of(invoice) or "")
    customer = store.get("customer", invoice["customer"])
    method_id = invoice["default_payment_method"] or (sub or {}).get("default_payment_method")
    method_id = method_id or customer["invoice_settings"]["default_payment_method"]
    return store.get("payment_method", method_id) if method_id else None


def pay_invoice(store: Store, invoice: dict, emit, *, at: int, method: dict | None = None) -> bool:
    """Charge an open invoice; what follows for its subscription (active again, past due, canceled)."""
    if invoice["status"] != "open":
        return invoice["status"] == "paid"
    sub = store.get("subscription", subscription_of(invoice) or "")
    if invoice["amount_due"] == 0:
        _invoice_paid(store, invoice, sub, emit, at)
        return True
    method = method or _card_of(store, invoice)
    invoice["attempt_count"] += 1
    invoice["attempted"] = True
    if method is None:
        _invoice_failed(store, invoice, sub, emit, at, action_required=False)
        return False
    card = api_payments.card_of_method(method)
    intent = api_payments.new_payment_intent(
        store,
        amount=invoice["amount_due"],
        currency=invoice["currency"],
        customer=invoice["customer"],
        metadata={},
        description="Subscription creation" if invoice["billing_reason"] == "subscription_create" else "Subscription",
    )
    emit("payment_intent.created", intent)
    if card.authenticate:
        api_payments.ask_for_authentication(
            store, intent, card, emit, public_url=store.public_url, return_url=invoice["hosted_invoice_url"]
        )
        _invoice_failed(store, invoice, sub, emit, at, action_required=True)
        return False
    outcome = "declined" if card.decline_code else "paid"
    api_payments.attempt_payment(store, intent, outcome, emit, card=card, method=method)
    if outcome == "paid":
        _invoice_paid(store, invoice, sub, emit, at)
        return True
    _invoice_failed(store, invoice, sub, emit, at, action_required=False)
    return False


def _invoice_paid(store: Store, invoice: dict, sub: dict | None, emit, at: int) -> None:
    previous = {"status": "open", "amount_paid": 0, "amount_remaining": invoice["amount_remaining"]}
    invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0, next_payment_attempt=None)
    invoice["status_transitions"]["paid_at"] = at
    emit("invoice.paid", invoice, previous)
    emit("invoice.payment_succeeded", invoice, previous)
    if sub is not None and sub["status"] in ("incomplete", "past_due", "unpaid"):
        previous_sub = {"status": sub["status"]}
        sub["status"] = "trialing" if sub["trial_end"] and sub["trial_end"] > at else "active"
        emit("customer.subscription.updated", sub, previous_sub)


def _invoice_failed(store: Store, invoice: dict, sub: dict | None, emit, at: int, *, action_required: bool) -> None:
    first_failure = store.billing_marks.setdefault(invoice["id"], {}).setdefault("first_failure", at)
    retries_left = RETRY_AFTER_DAYS[invoice["attempt_count"] - 1 :]
    renewal = invoice["billing_reason"] != "subscription_create"
    invoice["next_payment_attempt"] = first_failure + retries_left[0] * DAY if retries_left and renewal else None
    emit("invoice.payment_action_required" if action_required else "invoice.payment_failed", invoice)
    if sub is None:
        return
    if sub["status"] in ("active", "trialing"):
        sub["status"] = "past_due"
        emit("customer.subscription.updated", sub, {"status": "active"})
    elif sub["status"] == "past_due" and not retries_left:
        _end(store, sub, at, "payment_failed")


# --- routes ------------------------------------------------------------------------------------------


@router.add("GET", "/v1/subscriptions")
def subscriptions_list(call: Call) -> dict:
    params = call.params
    status = choice(params, "status", (*LIVE_STATUSES, "canceled", "incomplete_expired", "all", "ended"))
    customer, price = string(params, "customer"), string(params, "price")

    def wanted(sub: dict) -> bool:
        if customer and sub["customer"] != customer:
            return False
        if price and all(item["price"]["id"] != price for item in sub["items"]["data"]):
            return False
        if status in (None, "all") or status == sub["status"]:
            return status is not None or sub["status"] != "canceled"  # Stripe leaves canceled out by default
        return status == "ended" and sub["status"] in ("canceled", "incomplete_expired")

    subs = [sub for sub in call.store.newest_first("subscription") if wanted(sub)]
    return call.expanded(paginate(subs, params, "/v1/subscriptions"))


@router.add("GET", "/v1/subscriptions/{id}")
def subscriptions_retrieve(call: Call) -> dict:
    return call.expanded(call.store.require("subscription", call.args["id"]))


@router.add("POST", "/v1/subscriptions/{id}")
def subscriptions_update(call: Call) -> dict:
    store, params = call.store, call.params
    sub = store.require("subscription", call.args["id"])
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise StripeError(
            400,
            "A canceled subscription can only update its cancellation_details and metadata.",
            code="resource_missing",
        )
    changes = {"metadata": apply_metadata(sub["metadata"], params)}
    if "cancel_at_period_end" in params:
        changes.update(_cancel_at_period_end(store, sub, boolean(params, "cancel_at_period_end")))
    if "default_payment_method" in params:
        method_id = string(params, "default_payment_method")
        method = store.get("payment_method", method_id or "")
        if method is None or method["customer"] != sub["customer"]:
            raise no_such("PaymentMethod", method_id or "", param="default_payment_method", status=400)
        changes["default_payment_method"] = method_id
    call.apply_changes(sub, changes, "customer.subscription.updated")
    proration = choice(params, "proration_behavior", ("create_prorations", "always_invoice", "none"))
    for index, raw in enumerate(as_list(params.get("items", []), "items")):
        _update_item(call, sub, as_dict(raw, f"items[{index}]"), f"items[{index}]", proration or "create_prorations")
    return call.expanded(sub)


def _update_item(call: Call, sub: dict, wanted: dict, param: str, proration: str) -> None:
    item_id = string(wanted, "id")
    if not item_id:
        raise ParamError("This emulator changes existing subscription items only: give their `id`.", param=param)
    item = next((i for i in sub["items"]["data"] if i["id"] == item_id), None)
    if item is None:
        raise no_such("subscription_item", item_id, param=f"{param}[id]", status=400)
    price_id = string(wanted, "price") or item["price"]["id"]
    price = call.store.get("price", price_id)
    if price is None:
        raise no_such("price", price_id, param=f"{param}[price]", status=400)
    if price["type"] != "recurring" or price["currency"] != sub["currency"]:
        raise ParamError("The price must be recurring and in the subscription's currency.", param=f"{param}[price]")
    quantity = integer(wanted, "quantity", minimum=1) or item["quantity"]
    if price_id == item["price"]["id"] and quantity == item["quantity"]:
        return
    change_plan(call.store, sub, item, price, quantity, proration, call.emit)


@router.add("DELETE", "/v1/subscriptions/{id}")
def subscriptions_cancel(call: Call) -> dict:
    sub = call.store.require("subscription", call.args["id"])
    if sub["status"] == "canceled":
        raise StripeError(
            404, f"No such subscription: '{sub['id']}'", code="resource_missing", param="id"
        )  # Stripe answers a second cancel as if the subscription were gone
    _end(call.store, sub, customer_time(call.store, sub["customer"]), "cancellation_requested")
    return call.expanded(sub)


@router.add("GET", "/v1/invoices")
def invoices_list(call: Call) -> dict:
    params = call.params
    customer, subscription = string(params, "customer"), string(params, "subscription")
    status = choice(params, "status", ("draft", "open", "paid", "uncollectible", "void"))
    invoices = [
        invoice
        for invoice in call.store.newest_first("invoice")
        if (customer is None or invoice["customer"] == customer)
        and (subscription is None or subscription_of(invoice) == subscription)
        and (status is None or invoice["status"] == status)
    ]
    return call.expanded(paginate(invoices, params, "/v1/invoices"))


@router.add("GET", "/v1/invoices/{id}")
def invoices_retrieve(call: Call) -> dict:
    return call.expanded(call.store.require("invoice", call.args["id"]))


@router.add("GET", "/v1/invoices/{id}/lines")
def invoices_lines(call: Call) -> dict:
    invoice = call.store.require("invoice", call.args["id"])
    return call.expanded(paginate(invoice["lines"]["data"], call.params, invoice["lines"]["url"]))


@router.add("POST", "/v1/invoices/{id}/pay")
def invoices_pay(call: Call) -> dict:
    store = call.store
    invoice = store.require("invoice", call.args["id"])
    if invoice["status"] != "open":
        raise StripeError(400, f"Invoice is already {invoice['status']}.", code="invoice_not_open")
    method_id = string(call.params, "payment_method")
    method = store.get("payment_method", method_id) if method_id else None
    if method_id and method is None:
        raise no_such("PaymentMethod", method_id, param="payment_method", status=400)
    if not pay_invoice(store, invoice, call.emit, at=customer_time(store, invoice["customer"]), method=method):
        raise StripeError(402, "Your card was declined.", type="card_error", code="card_declined")
    return call.expanded(invoice)


@router.add("POST", "/v1/payment_methods/{id}/attach")
def payment_methods_attach(call: Call) -> dict:
    customer_id = string(call.params, "customer", required=True)
    customer = call.store.get("customer", customer_id)
    if customer is None or customer.get("deleted"):
        raise no_such("customer", customer_id, param="customer", status=400)
    return call.expanded(save_card(call.store, customer, call.args["id"], call.emit))


# --- test clocks -------------------------------------------------------------------------------------


@router.add("POST", "/v1/test_helpers/test_clocks")
def test_clocks_create(call: Call) -> dict:
    frozen_time = integer(call.params, "frozen_time", required=True, minimum=0)
    clock = {
        "id": new_id("test_helpers.test_clock"),
        "object": "test_helpers.test_clock",
        "created": now(),
        "deletes_after": now() + 30 * DAY,
        "frozen_time": frozen_time,
        "livemode": False,
        "name": string(call.params, "name", max_length=300),
        "status": "ready",
        "status_details": {},
    }
    call.store.add(clock)
    call.emit("test_helpers.test_clock.created", clock)
    return clock


@router.add("GET", "/v1/test_helpers/test_clocks")
def test_clocks_list(call: Call) -> dict:
    return paginate(call.store.newest_first("test_helpers.test_clock"), call.params, "/v1/test_helpers/test_clocks")


@router.add("GET", "/v1/test_helpers/test_clocks/{id}")
def test_clocks_retrieve(call: Call) -> dict:
    return call.store.require("test_helpers.test_clock", call.args["id"])


@router.add("POST", "/v1/test_helpers/test_clocks/{id}/advance")
def test_clocks_advance(call: Call) -> dict:
    """Move the clock on: every subscription of its customers lives through the time in between, in order."""
    store = call.store
    clock = store.require("test_helpers.test_clock", call.args["id"])
    target = integer(call.params, "frozen_time", required=True, minimum=0)
    if target <= clock["frozen_time"]:
        raise ParamError(
            "The test clock's frozen_time must be later than its current frozen_time.", param="frozen_time"
        )
    if target > add_interval(clock["frozen_time"], "year", 2):
        raise ParamError("A test clock cannot advance more than two years at a time.", param="frozen_time")
    clock["status"] = "advancing"
    store.emit("test_helpers.test_clock.advancing", clock)
    customers = {c["id"] for c in store.objects["customer"].values() if c.get("test_clock") == clock["id"]}
    subs = [sub for sub in store.objects["subscription"].values() if sub["customer"] in customers]
    # Step the whole clock through each subscription's due moments so their events interleave in time order.
    while True:
        steps = [(at, sub["id"]) for sub in subs for at, _ in _due(store, sub) if at <= target]
        if not steps:
            break
        at, sub_id = min(steps)
        clock["frozen_time"] = at
        advance_subscription(store, store.get("subscription", sub_id), at)
    clock.update(frozen_time=target, status="ready")
    store.emit("test_helpers.test_clock.ready", clock)
    return clock


@router.add("DELETE", "/v1/test_helpers/test_clocks/{id}")
def test_clocks_delete(call: Call) -> dict:
    clock = call.store.require("test_helpers.test_clock", call.args["id"])
    call.store.remove("test_helpers.test_clock", clock["id"])
    return {"id": clock["id"], "object": "test_helpers.test_clock", "deleted": True}


# --- the customer portal -------------------------------------------------------------------------------


def new_portal_session(store: Store, customer_id: str, *, return_url: str | None, **fields) -> dict:
    session_id = new_id("billing_portal.session")
    return store.add(
        {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": PORTAL_CONFIGURATION,
            "created": now(),
            "customer": customer_id,
            "customer_account": None,
            "flow": None,
            "livemode": False,
            "locale": None,
            "on_behalf_of": None,
            "return_url": return_url,
            "url": f"{store.public_url}/p/session/{session_id}",
            **fields,
        }
    )


@router.add("POST", "/v1/billing_portal/sessions")
def portal_sessions_create(call: Call) -> dict:
    params = call.params
    customer_id = string(params, "customer", required=True)
    customer = call.store.get("customer", customer_id)
    if customer is None or customer.get("deleted"):
        raise no_such("customer", customer_id or "", param="customer", status=400)
    return new_portal_session(
        call.store,
        customer_id,
        return_url=string(params, "return_url"),
        configuration=string(params, "configuration") or PORTAL_CONFIGURATION,
        locale=choice(params, "locale", ("auto", "en", "fr", "de")) or None,
    )


def portal_configuration(store: Store) -> dict:
    """The account's one portal configuration, its login page turned on (a setting of Stripe's dashboard)."""
    return {
        "id": PORTAL_CONFIGURATION,
        "object": "billing_portal.configuration",
        "active": True,
        "application": None,
        "business_profile": {"headline": None, "privacy_policy_url": None, "terms_of_service_url": None},
        "created": 1_700_000_000,
        "default_return_url": None,
        "features": {
            "customer_update": {"allowed_updates": ["email", "address"], "enabled": True},
            "invoice_history": {"enabled": True},
            "payment_method_update": {"enabled": True, "payment_method_configuration": None},
            "subscription_cancel": {
                "cancellation_reason": {"enabled": False, "options": []},
                "enabled": True,
                "mode": "at_period_end",
                "proration_behavior": "none",
            },
            "subscription_update": {
                "billing_cycle_anchor": None,
                "default_allowed_updates": [],
                "enabled": False,
                "products": [],
                "proration_behavior": "none",
                "schedule_at_period_end": {"conditions": []},
                "trial_update_behavior": "end_trial",
            },
        },
        "is_default": True,
        "livemode": False,
        "login_page": {"enabled": True, "url": f"{store.public_url}/p/session/{PORTAL_LOGIN_PAGE}"},
        "metadata": {},
        "name": None,
        "updated": 1_700_000_000,
    }


@router.add("GET", "/v1/billing_portal/configurations")
def portal_configurations_list(call: Call) -> dict:
    found = [portal_configuration(call.store)]
    for flag in ("active", "is_default"):
        if flag in call.params and not boolean(call.params, flag):
            found = []
    return paginate(found, call.params, "/v1/billing_portal/configurations")
