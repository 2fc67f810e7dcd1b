"""`/v1/payment_intents`, `/v1/charges`, `/v1/refunds`, `/v1/balance_transactions`, `/v1/payment_methods`.

Checkout and the control API pay through `attempt_payment` and `settle_payment`;
the routes here are what a client calls directly.
"""

from collections.abc import Callable
from dataclasses import dataclass

from .api_catalog import validate_currency
from .currencies import MAX_AMOUNT
from .errors import ParamError, StripeError, missing, no_such
from .listing import paginate
from .params import apply_metadata, choice, integer, string
from .routing import Call, Router
from .store import Store, new_id, now

router = Router()
Emit = Callable[..., dict]

OUTCOMES = ("paid", "declined", "delayed")


@dataclass(frozen=True)
class TestCard:
    """One of Stripe's test payment methods: the card it stands for and what paying with it does."""

    brand: str
    last4: str
    decline_code: str | None = None  # the issuer declines it, for this reason
    authenticate: bool = False  # the issuer asks for 3D Secure first
    declines_later: bool = False  # it can be saved on a customer, and every charge to it is declined


# Stripe's names for its test payment methods (https://docs.stripe.com/testing).
TEST_CARDS = {
    "pm_card_visa": TestCard("visa", "4242"),
    "pm_card_visa_debit": TestCard("visa", "5556"),
    "pm_card_mastercard": TestCard("mastercard", "4444"),
    "pm_card_amex": TestCard("amex", "8431"),
    "pm_card_chargeDeclined": TestCard("visa", "0002", decline_code="generic_decline"),
    "pm_card_visa_chargeDeclined": TestCard("visa", "0002", decline_code="generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": TestCard("visa", "9995", decline_code="insufficient_funds"),
    "pm_card_visa_chargeDeclinedInsufficientFunds": TestCard("visa", "9995", decline_code="insufficient_funds"),
    "pm_card_chargeDeclinedLostCard": TestCard("visa", "9987", decline_code="lost_card"),
    "pm_card_visa_chargeDeclinedLostCard": TestCard("visa", "9987", decline_code="lost_card"),
    "pm_card_chargeDeclinedStolenCard": TestCard("visa", "9979", decline_code="stolen_card"),
    "pm_card_visa_chargeDeclinedStolenCard": TestCard("visa", "9979", decline_code="stolen_card"),
    "pm_card_chargeCustomerFail": TestCard("visa", "0341", decline_code="generic_decline", declines_later=True),
    "pm_card_authenticationRequired": TestCard("visa", "3184", authenticate=True),
    "pm_card_threeDSecure2Required": TestCard("visa", "3220", authenticate=True),
}
VISA = TEST_CARDS["pm_card_visa"]
DECLINED = TEST_CARDS["pm_card_chargeDeclined"]
DECLINE_MESSAGES = {"insufficient_funds": "Your card has insufficient funds."}
AUTHENTICATION_FAILED = (
    "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new "
    "PaymentMethod to attempt to fulfill this PaymentIntent again."
)


_CARD_BY_LAST4 = {card.last4: card for card in TEST_CARDS.values()}


def card_of_method(method: dict) -> TestCard:
    """What charging a saved payment method does: the test card it was made from."""
    return _CARD_BY_LAST4.get(method["card"]["last4"], TestCard(method["card"]["brand"], method["card"]["last4"]))


def new_payment_method(store: Store, card: TestCard, customer: str | None) -> dict:
    return _payment_method(store, card.brand, card.last4, customer, _billing())


def decline_message(decline_code: str) -> str:
    return DECLINE_MESSAGES.get(decline_code, "Your card was declined.")


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
    """The card of a payment method: what it is and what it supports."""
    return {
        "brand": brand,
        "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
        "country": "US",
        "display_brand": brand,
        "exp_month": 12,
        "exp_year": 2034,
        "fingerprint": f"emu{last4}{brand[:4]}",
        "funding": "credit",
        "generated_from": None,
        "last4": last4,
        "networks": {"available": [brand], "preferred": None},
        "regulated_status": "unregulated",
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
    }


def _charge_card(brand: str, last4: str, amount: int) -> dict:
    """The card as a charge saw it: what the network answered for this payment."""
    card = _card_details(brand, last4)
    for belongs_to_the_method in ("display_brand", "generated_from", "networks", "three_d_secure_usage"):
        card.pop(belongs_to_the_method)
    return {
        **card,
        "amount_authorized": amount,
        "authorization_code": "123456",
        "extended_authorization": {"status": "disabled"},
        "incremental_authorization": {"status": "unavailable"},
        "installments": None,
        "mandate": None,
        "multicapture": {"status": "unavailable"},
        "network": brand,
        "network_token": {"used": False},
        "network_transaction_id": f"emu{last4}",
        "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
        "three_d_secure": None,
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


def _new_charge(store: Store, intent: dict, payment_method: dict, status: str, decline_code: str | None) -> dict:
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
        "failure_code": "card_declined" if decline_code else None,
        "failure_message": decline_message(decline_code) if decline_code else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(intent["metadata"]),
        "on_behalf_of": None,
        "outcome": _outcome(status, decline_code),
        "paid": paid,
        "payment_intent": intent["id"],
        "payment_method": payment_method["id"],
        "payment_method_details": {
            "card": _charge_card(payment_method["card"]["brand"], payment_method["card"]["last4"], intent["amount"]),
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


def _outcome(status: str, decline_code: str | None) -> dict:
    if decline_code:
        return {
            "advice_code": "try_again_later" if decline_code == "generic_decline" else "do_not_try_again",
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "declined_by_network",
            "reason": decline_code,
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
    store: Store,
    intent: dict,
    outcome: str,
    emit: Emit,
    *,
    email: str | None = None,
    name: str | None = None,
    card: TestCard | None = None,
    method: dict | None = None,
) -> dict:
    """What a customer paying does: a charge for the intent, succeeded, declined or pending (`delayed`)."""
    card = card or (DECLINED if outcome == "declined" else VISA)
    method = method or _payment_method(store, card.brand, card.last4, intent["customer"], _billing(email, name))
    decline_code = (card.decline_code or "generic_decline") if outcome == "declined" else None
    status = {"paid": "succeeded", "declined": "failed", "delayed": "pending"}[outcome]
    charge = _new_charge(store, intent, method, status, decline_code)
    previous = {
        key: intent[key]
        for key in ("status", "latest_charge", "payment_method", "amount_received", "last_payment_error", "next_action")
    }
    intent.update(latest_charge=charge["id"], payment_method=method["id"], next_action=None)
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
            failure_message=decline_message("generic_decline"),
            outcome=_outcome("failed", "generic_decline"),
        )
        intent.update(status="requires_payment_method", processing=None, last_payment_error=_decline(charge, method))
        emit("charge.failed", charge, previous_charge)
        emit("payment_intent.payment_failed", intent, previous_intent)
    return charge


def _decline(charge: dict, method: dict) -> dict:
    return {
        "charge": charge["id"],
        "code": "card_declined",
        "decline_code": charge["outcome"]["reason"],
        "doc_url": "https://stripe.com/docs/error-codes/card-declined",
        "message": charge["failure_message"],
        "payment_method": method,
        "type": "card_error",
    }


def cancel_intent(intent: dict, emit: Emit, reason: str | None = None) -> None:
    if intent["status"] in ("succeeded", "canceled", "processing"):
        return
    previous = {"status": intent["status"], "canceled_at": None, "cancellation_reason": None, "next_action": None}
    intent.update(status="canceled", canceled_at=now(), cancellation_reason=reason, next_action=None)
    emit("payment_intent.canceled", intent, previous)


# --- payment intents ------------------------------------------------------------------------------

CONFIRMABLE = ("requires_payment_method", "requires_confirmation")


def authentication_url(public_url: str, intent: dict) -> str:
    return f"{public_url}/3ds/{intent['id']}?client_secret={intent['client_secret']}"


def confirm_intent(store: Store, intent: dict, payment_method: str | None, emit: Emit, **where) -> None:
    """Pay the intent with one of Stripe's test payment methods, as `confirm` does; a declined card raises
    Stripe's 402 card error, a card that asks for 3D Secure leaves the intent in `requires_action`."""
    if intent["status"] not in CONFIRMABLE:
        raise ParamError(
            f"This PaymentIntent's status is {intent['status']}; it cannot be confirmed.",
            code="payment_intent_unexpected_state",
            param=None,
        )
    if payment_method is None:
        raise ParamError(
            "You cannot confirm this PaymentIntent because it's missing a payment method.", param="payment_method"
        )
    card = TEST_CARDS.get(payment_method)
    if card is None:
        raise StripeError(
            400, f"No such PaymentMethod: '{payment_method}'", code="resource_missing", param="payment_method"
        )
    if card.authenticate:
        ask_for_authentication(store, intent, card, emit, **where)
        return
    charge = attempt_payment(store, intent, "declined" if card.decline_code else "paid", emit, card=card)
    if card.decline_code:
        raise StripeError(
            402,
            charge["failure_message"],
            type="card_error",
            code="card_declined",
            extra={"decline_code": card.decline_code, "charge": charge["id"], "payment_intent": intent},
        )


def ask_for_authentication(
    store: Store, intent: dict, card: TestCard, emit: Emit, *, public_url: str, return_url: str | None
) -> None:
    """The issuer wants 3D Secure: Stripe hands the customer a page to pass it before any charge is made."""
    method = _payment_method(store, card.brand, card.last4, intent["customer"], _billing())
    previous = {key: intent[key] for key in ("status", "payment_method", "next_action", "last_payment_error")}
    url = authentication_url(public_url, intent)
    if return_url:
        next_action = {"type": "redirect_to_url", "redirect_to_url": {"return_url": return_url, "url": url}}
        store.authentication_returns[intent["id"]] = return_url
    else:
        next_action = {
            "type": "use_stripe_sdk",
            "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": url, "source": method["id"]},
        }
    intent.update(
        status="requires_action", payment_method=method["id"], next_action=next_action, last_payment_error=None
    )
    emit("payment_intent.requires_action", intent, previous)


def finish_authentication(store: Store, intent: dict, passed: bool, emit: Emit) -> None:
    """The customer passes 3D Secure (the charge is made) or fails it (the intent wants another card)."""
    if intent["status"] != "requires_action":
        raise ParamError(
            f"This PaymentIntent's status is {intent['status']}; there is nothing to authenticate.",
            code="payment_intent_unexpected_state",
            param=None,
        )
    method = store.get("payment_method", intent["payment_method"])
    if passed:
        card = TestCard(method["card"]["brand"], method["card"]["last4"])
        attempt_payment(store, intent, "paid", emit, card=card, method=method)
        return
    previous = {"status": intent["status"], "next_action": intent["next_action"], "last_payment_error": None}
    intent.update(
        status="requires_payment_method",
        next_action=None,
        last_payment_error={
            "code": "payment_intent_authentication_failure",
            "doc_url": "https://stripe.com/docs/error-codes/payment-intent-authentication-failure",
            "message": AUTHENTICATION_FAILED,
            "payment_method": method,
            "type": "invalid_request_error",
        },
    )
    emit("payment_intent.payment_failed", intent, previous)


def intent_by_client_secret(store: Store, client_secret: str | None) -> dict | None:
    """The intent a client secret belongs to (what Stripe.js is given), or None."""
    intent_id = (client_secret or "").split("_secret_")[0]
    intent = store.get("payment_intent", intent_id) if intent_id else None
    return intent if intent is not None and intent["client_secret"] == client_secret else None


def _client_visible(call: Call, intent: dict) -> dict:
    """A publishable key sees an intent only with its client secret; a secret key sees it whole."""
    if call.publishable and string(call.params, "client_secret") != intent["client_secret"]:
        raise no_such("payment_intent", intent["id"])
    return intent


@router.add("POST", "/v1/payment_intents")
def payment_intents_create(call: Call) -> dict:
    params = call.params
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
        confirm_intent(
            call.store,
            intent,
            string(params, "payment_method"),
            call.emit,
            public_url=call.public_url,
            return_url=string(params, "return_url"),
        )
    return call.expanded(intent)


@router.add("GET", "/v1/payment_intents/{id}", publishable=True)
def payment_intents_retrieve(call: Call) -> dict:
    return call.expanded(_client_visible(call, call.store.require("payment_intent", call.args["id"])))


@router.add("POST", "/v1/payment_intents/{id}")
def payment_intents_update(call: Call) -> dict:
    intent = call.store.require("payment_intent", call.args["id"])
    changes = {"metadata": apply_metadata(intent["metadata"], call.params)}
    if "description" in call.params:
        changes["description"] = string(call.params, "description") or None
    call.apply_changes(intent, changes, "payment_intent.updated")
    return call.expanded(intent)


@router.add("POST", "/v1/payment_intents/{id}/confirm", publishable=True)
def payment_intents_confirm(call: Call) -> dict:
    intent = _client_visible(call, call.store.require("payment_intent", call.args["id"]))
    confirm_intent(
        call.store,
        intent,
        string(call.params, "payment_method"),
        call.emit,
        public_url=call.public_url,
        return_url=string(call.params, "return_url"),
    )
    return call.expanded(intent)


@router.add("POST", "/v1/payment_intents/{id}/cancel")
def payment_intents_cancel(call: Call) -> dict:
    intent = call.store.require("payment_intent", call.args["id"])
    if intent["status"] in ("succeeded", "canceled", "processing"):
        raise StripeError(
            400,
            f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}. Only a "
            "PaymentIntent with one of the following statuses may be canceled: requires_payment_method, "
            "requires_capture, requires_confirmation, requires_action.",
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
