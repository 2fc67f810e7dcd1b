"""`/v1/payment_intents`, `/v1/charges`, `/v1/refunds`, `/v1/balance_transactions`, `/v1/payment_methods`.

Checkout and the control API pay through `attempt_payment` and `settle_payment`;
the routes here are what a client calls directly.
"""

from collections.abc import Callable

from .api_catalog import validate_currency
from .currencies import MAX_AMOUNT
from .errors import ParamError, StripeError, missing, no_such
from .listing import paginate
from .params import apply_metadata, check_known, choice, integer, string
from .routing import Call, Router
from .store import Store, new_id, now

router = Router()
Emit = Callable[..., dict]

OUTCOMES = ("paid", "declined", "delayed")
TEST_CARDS = {
    "pm_card_visa": ("visa", "4242", None),
    "pm_card_mastercard": ("mastercard", "4444", None),
    "pm_card_chargeDeclined": ("visa", "0002", "card_declined"),
    "pm_card_visa_chargeDeclined": ("visa", "0002", "card_declined"),
}


def _fee(amount: int) -> int:
    return round(amount * 0.029) + 30 if amount else 0


def _balance_transaction(store: Store, source: str, amount: int, currency: str, kind: str) -> dict:
    fee = _fee(amount) if kind == "charge" else 0
    created = now()
    txn = {
        "id": new_id("balance_transaction"),
        "object": "balance_transaction",
        "amount": amount,
        "available_on": created + 2 * 86400,
        "balance_type": "payments",
        "created": created,
        "currency": currency,
        "description": None,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": [
            {
                "amount": fee,
                "application": None,
                "currency": currency,
                "description": "Stripe processing fees",
                "type": "stripe_fee",
            }
        ]
        if fee
        else [],
        "net": amount - fee,
        "reporting_category": kind,
        "source": source,
        "status": "pending",
        "type": kind,
    }
    return store.add(txn)


def _payment_method(store: Store, brand: str, last4: str, customer: str | None, billing: dict) -> dict:
    return store.add(
        {
            "id": new_id("payment_method"),
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": billing,
            "card": _card_details(brand, last4),
            "created": now(),
            "customer": customer,
            "customer_account": None,
            "livemode": False,
            "metadata": {},
            "type": "card",
        }
    )


def _card_details(brand: str, last4: str) -> dict:
    return {
        "brand": brand,
        "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
        "country": "US",
        "exp_month": 12,
        "exp_year": 2034,
        "fingerprint": f"emu{last4}{brand[:4]}",
        "funding": "credit",
        "last4": last4,
        "networks": {"available": [brand], "preferred": None},
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
    }


def _billing(email: str | None = None, name: str | None = None) -> dict:
    address = {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}
    return {"address": address, "email": email, "name": name, "phone": None, "tax_id": None}


def new_payment_intent(
    store: Store, *, amount: int, currency: str, customer: str | None, metadata: dict, description: str | None = None
) -> dict:
    created = now()
    intent_id = new_id("payment_intent")
    return store.add(
        {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": 0,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": None,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic",
            "client_secret": f"{intent_id}_secret_{new_id('payment_method')[3:]}",
            "confirmation_method": "automatic",
            "created": created,
            "currency": currency,
            "customer": customer,
            "customer_account": None,
            "description": description,
            "excluded_payment_method_types": None,
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "managed_payments": None,
            "metadata": metadata,
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": None,
            "payment_method_configuration_details": None,
            "payment_method_options": {
                "card": {
                    "installments": None,
                    "mandate_options": None,
                    "network": None,
                    "request_three_d_secure": "automatic",
                }
            },
            "payment_method_types": ["card"],
            "processing": None,
            "receipt_email": None,
            "review": None,
            "setup_future_usage": None,
            "shipping": None,
            "source": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "requires_payment_method",
            "transfer_data": None,
            "transfer_group": None,
        }
    )


def _new_charge(store: Store, intent: dict, payment_method: dict, status: str, failure: str | None) -> dict:
    charge_id = new_id("charge")
    paid = status == "succeeded"
    charge = {
        "id": charge_id,
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": intent["amount"] if paid else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": None,
        "billing_details": payment_method["billing_details"],
        "calculated_statement_descriptor": "EMULATOR",
        "captured": paid,
        "created": now(),
        "currency": intent["currency"],
        "customer": intent["customer"],
        "description": intent["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": failure,
        "failure_message": "Your card was declined." if failure else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(intent["metadata"]),
        "on_behalf_of": None,
        "outcome": _outcome(status, failure),
        "paid": paid,
        "payment_intent": intent["id"],
        "payment_method": payment_method["id"],
        "payment_method_details": {
            "card": _card_details(payment_method["card"]["brand"], payment_method["card"]["last4"]),
            "type": "card",
        },
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/emulator/{charge_id}",
        "refunded": False,
        "refunds": {"object": "list", "data": [], "has_more": False, "url": f"/v1/charges/{charge_id}/refunds"},
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }
    if paid:
        charge["balance_transaction"] = _balance_transaction(
            store, charge_id, intent["amount"], intent["currency"], "charge"
        )["id"]
    return store.add(charge)


def _outcome(status: str, failure: str | None) -> dict:
    if failure:
        return {
            "advice_code": "try_again_later",
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "declined_by_network",
            "reason": "generic_decline",
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }
    return {
        "advice_code": None,
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "approved_by_network",
        "reason": None,
        "risk_level": "normal",
        "risk_score": 20,
        "seller_message": "Payment complete." if status == "succeeded" else "Payment pending.",
        "type": "authorized",
    }


def attempt_payment(
    store: Store, intent: dict, outcome: str, emit: Emit, *, email: str | None = None, name: str | None = None
) -> dict:
    """What a customer paying does: a charge for the intent, succeeded, declined or pending (`delayed`)."""
    failure = "card_declined" if outcome == "declined" else None
    last4 = "0002" if failure else "4242"
    method = _payment_method(store, "visa", last4, intent["customer"], _billing(email, name))
    status = {"paid": "succeeded", "declined": "failed", "delayed": "pending"}[outcome]
    charge = _new_charge(store, intent, method, status, failure)
    previous = {
        key: intent[key]
        for key in ("status", "latest_charge", "payment_method", "amount_received", "last_payment_error")
    }
    intent.update(latest_charge=charge["id"], payment_method=method["id"])
    if outcome == "paid":
        intent.update(status="succeeded", amount_received=intent["amount"], last_payment_error=None)
        emit("charge.succeeded", charge)
        emit("payment_intent.succeeded", intent, previous)
    elif outcome == "declined":
        intent.update(status="requires_payment_method", last_payment_error=_decline(charge, method))
        emit("charge.failed", charge)
        emit("payment_intent.payment_failed", intent, previous)
    else:
        intent.update(status="processing", processing={"type": "card", "card": None}, last_payment_error=None)
        emit("charge.pending", charge)
        emit("payment_intent.processing", intent, previous)
    return charge


def settle_payment(store: Store, intent: dict, succeeded: bool, emit: Emit) -> dict:
    """A delayed payment clears or fails."""
    charge = store.get("charge", intent["latest_charge"])
    previous_intent = {key: intent[key] for key in ("status", "amount_received", "last_payment_error", "processing")}
    previous_charge = {
        key: charge[key] for key in ("status", "paid", "captured", "amount_captured", "failure_code", "failure_message")
    }
    if succeeded:
        charge.update(
            status="succeeded",
            paid=True,
            captured=True,
            amount_captured=charge["amount"],
            outcome=_outcome("succeeded", None),
        )
        charge["balance_transaction"] = _balance_transaction(
            store, charge["id"], charge["amount"], charge["currency"], "charge"
        )["id"]
        intent.update(status="succeeded", amount_received=intent["amount"], processing=None)
        emit("charge.succeeded", charge, previous_charge)
        emit("payment_intent.succeeded", intent, previous_intent)
    else:
        method = store.get("payment_method", charge["payment_method"])
        charge.update(
            status="failed",
            failure_code="card_declined",
            failure_message="Your card was declined.",
            outcome=_outcome("failed", "card_declined"),
        )
        intent.update(status="requires_payment_method", processing=None, last_payment_error=_decline(charge, method))
        emit("charge.failed", charge, previous_charge)
        emit("payment_intent.payment_failed", intent, previous_intent)
    return charge


def _decline(charge: dict, method: dict) -> dict:
    return {
        "charge": charge["id"],
        "code": "card_declined",
        "decline_code": "generic_decline",
        "doc_url": "https://stripe.com/docs/error-codes/card-declined",
        "message": "Your card was declined.",
        "payment_method": method,
        "type": "card_error",
    }


def cancel_intent(intent: dict, emit: Emit, reason: str | None = None) -> None:
    if intent["status"] in ("succeeded", "canceled", "processing"):
        return
    previous = {"status": intent["status"], "canceled_at": None, "cancellation_reason": None}
    intent.update(status="canceled", canceled_at=now(), cancellation_reason=reason)
    emit("payment_intent.canceled", intent, previous)


# --- payment intents ------------------------------------------------------------------------------


def _confirm(call: Call, intent: dict, payment_method: str | None) -> None:
    if payment_method is None:
        raise ParamError(
            "You cannot confirm this PaymentIntent because it's missing a payment method.", param="payment_method"
        )
    if payment_method not in TEST_CARDS:
        raise StripeError(
            400, f"No such PaymentMethod: '{payment_method}'", code="resource_missing", param="payment_method"
        )
    _, _, failure = TEST_CARDS[payment_method]
    charge = attempt_payment(call.store, intent, "declined" if failure else "paid", call.emit)
    if failure:
        raise StripeError(
            402,
            "Your card was declined.",
            type="card_error",
            code="card_declined",
            extra={"decline_code": "generic_decline", "charge": charge["id"], "payment_intent": intent},
        )


@router.add("POST", "/v1/payment_intents")
def payment_intents_create(call: Call) -> dict:
    params = call.params
    check_known(
        params,
        {
            "amount",
            "currency",
            "customer",
            "metadata",
            "description",
            "payment_method",
            "payment_method_types",
            "confirm",
            "receipt_email",
            "automatic_payment_methods",
        },
    )
    amount = integer(params, "amount", required=True, minimum=1, maximum=MAX_AMOUNT)
    currency = validate_currency(string(params, "currency"))
    customer = string(params, "customer")
    if customer and call.store.get("customer", customer) is None:
        raise no_such("customer", customer, param="customer", status=400)
    intent = new_payment_intent(
        call.store,
        amount=amount,
        currency=currency,
        customer=customer,
        metadata=apply_metadata({}, params),
        description=string(params, "description"),
    )
    call.emit("payment_intent.created", intent)
    if params.get("confirm") == "true":
        _confirm(call, intent, string(params, "payment_method"))
    return call.expanded(intent)


@router.add("GET", "/v1/payment_intents/{id}")
def payment_intents_retrieve(call: Call) -> dict:
    return call.expanded(call.store.require("payment_intent", call.args["id"]))


@router.add("POST", "/v1/payment_intents/{id}")
def payment_intents_update(call: Call) -> dict:
    check_known(call.params, {"metadata", "description", "receipt_email"})
    intent = call.store.require("payment_intent", call.args["id"])
    changes = {"metadata": apply_metadata(intent["metadata"], call.params)}
    if "description" in call.params:
        changes["description"] = string(call.params, "description") or None
    call.apply_changes(intent, changes, "payment_intent.updated")
    return call.expanded(intent)


@router.add("POST", "/v1/payment_intents/{id}/confirm")
def payment_intents_confirm(call: Call) -> dict:
    check_known(call.params, {"payment_method", "return_url"})
    intent = call.store.require("payment_intent", call.args["id"])
    if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
        raise ParamError(
            f"This PaymentIntent's status is {intent['status']}; it cannot be confirmed.",
            code="payment_intent_unexpected_state",
            param=None,
        )
    _confirm(call, intent, string(call.params, "payment_method"))
    return call.expanded(intent)


@router.add("POST", "/v1/payment_intents/{id}/cancel")
def payment_intents_cancel(call: Call) -> dict:
    check_known(call.params, {"cancellation_reason"})
    intent = call.store.require("payment_intent", call.args["id"])
    if intent["status"] in ("succeeded", "canceled", "processing"):
        raise StripeError(
            400,
            f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}.",
            code="payment_intent_unexpected_state",
        )
    reason = choice(
        call.params, "cancellation_reason", ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
    )
    cancel_intent(intent, call.emit, reason)
    return call.expanded(intent)


@router.add("GET", "/v1/payment_intents")
def payment_intents_list(call: Call) -> dict:
    customer = string(call.params, "customer")
    intents = [i for i in call.store.newest_first("payment_intent") if customer is None or i["customer"] == customer]
    return call.expanded(paginate(intents, call.params, "/v1/payment_intents"))


# --- charges ---------------------------------------------------------------------------------------


@router.add("GET", "/v1/charges/{id}")
def charges_retrieve(call: Call) -> dict:
    return call.expanded(call.store.require("charge", call.args["id"]))


@router.add("POST", "/v1/charges/{id}")
def charges_update(call: Call) -> dict:
    check_known(call.params, {"metadata", "description"})
    charge = call.store.require("charge", call.args["id"])
    changes = {"metadata": apply_metadata(charge["metadata"], call.params)}
    if "description" in call.params:
        changes["description"] = string(call.params, "description") or None
    call.apply_changes(charge, changes, "charge.updated")
    return call.expanded(charge)


@router.add("GET", "/v1/charges")
def charges_list(call: Call) -> dict:
    customer = string(call.params, "customer")
    intent = string(call.params, "payment_intent")
    charges = [
        c
        for c in call.store.newest_first("charge")
        if (customer is None or c["customer"] == customer) and (intent is None or c["payment_intent"] == intent)
    ]
    return call.expanded(paginate(charges, call.params, "/v1/charges"))


# --- refunds ----------------------------------------------------------------------------------------


def _refunded_charge(call: Call) -> dict:
    charge_id = string(call.params, "charge")
    intent_id = string(call.params, "payment_intent")
    if charge_id and intent_id:
        raise ParamError("You may only specify one of these parameters: charge, payment_intent.", param="charge")
    if intent_id:
        intent = call.store.get("payment_intent", intent_id)
        if intent is None:
            raise no_such("payment_intent", intent_id, param="payment_intent", status=400)
        if not intent["latest_charge"] or intent["status"] != "succeeded":
            raise StripeError(
                400,
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                code="charge_not_refundable",
                param="payment_intent",
            )
        return call.store.require("charge", intent["latest_charge"], param="payment_intent", status=400)
    if not charge_id:
        raise missing("charge")
    return call.store.require("charge", charge_id, param="charge", status=400)


@router.add("POST", "/v1/refunds")
def refunds_create(call: Call) -> dict:
    params = call.params
    check_known(params, {"charge", "payment_intent", "amount", "reason", "metadata", "instructions_email"})
    reason = choice(params, "reason", ("duplicate", "fraudulent", "requested_by_customer"))
    amount = integer(params, "amount", minimum=1)
    metadata = apply_metadata({}, params)
    charge = _refunded_charge(call)
    if charge["status"] != "succeeded":
        raise StripeError(
            400, f"Charge {charge['id']} has not succeeded; it cannot be refunded.", code="charge_not_refundable"
        )
    remaining = charge["amount"] - charge["amount_refunded"]
    if remaining <= 0:
        raise StripeError(400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
    amount = remaining if amount is None else amount
    if amount > remaining:
        raise StripeError(
            400,
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
            code="amount_too_large",
            param="amount",
        )
    refund_id = new_id("refund")
    refund = call.store.add(
        {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "balance_transaction": _balance_transaction(call.store, refund_id, -amount, charge["currency"], "refund")[
                "id"
            ],
            "charge": charge["id"],
            "created": now(),
            "currency": charge["currency"],
            "customer": charge["customer"],
            "customer_account": None,
            "destination_details": {
                "card": {
                    "reference_status": "pending",
                    "reference_type": "acquirer_reference_number",
                    "type": "refund",
                },
                "type": "card",
            },
            "metadata": metadata,
            "payment_intent": charge["payment_intent"],
            "payment_method": charge["payment_method"],
            "reason": reason,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
    )
    previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount"]
    charge["refunds"]["data"].insert(0, refund)
    call.emit("refund.created", refund)
    call.emit("charge.refunded", charge, previous)
    return call.expanded(refund)


@router.add("GET", "/v1/refunds/{id}")
def refunds_retrieve(call: Call) -> dict:
    return call.expanded(call.store.require("refund", call.args["id"]))


@router.add("POST", "/v1/refunds/{id}")
def refunds_update(call: Call) -> dict:
    check_known(call.params, {"metadata"})
    refund = call.store.require("refund", call.args["id"])
    call.apply_changes(refund, {"metadata": apply_metadata(refund["metadata"], call.params)}, "refund.updated")
    return call.expanded(refund)


@router.add("GET", "/v1/refunds")
def refunds_list(call: Call) -> dict:
    charge = string(call.params, "charge")
    intent = string(call.params, "payment_intent")
    refunds = [
        r
        for r in call.store.newest_first("refund")
        if (charge is None or r["charge"] == charge) and (intent is None or r["payment_intent"] == intent)
    ]
    return call.expanded(paginate(refunds, call.params, "/v1/refunds"))


# --- balance transactions and payment methods ------------------------------------------------------


@router.add("GET", "/v1/balance_transactions/{id}")
def balance_transactions_retrieve(call: Call) -> dict:
    return call.expanded(call.store.require("balance_transaction", call.args["id"]))


@router.add("GET", "/v1/balance_transactions")
def balance_transactions_list(call: Call) -> dict:
    return call.expanded(
        paginate(call.store.newest_first("balance_transaction"), call.params, "/v1/balance_transactions")
    )


@router.add("GET", "/v1/payment_methods/{id}")
def payment_methods_retrieve(call: Call) -> dict:
    return call.expanded(call.store.require("payment_method", call.args["id"]))
