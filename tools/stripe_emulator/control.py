"""`/_emulator/...`: what tests, benchmarks and the demo use to steer the emulator. No API key needed."""

import copy
import json
from urllib.parse import parse_qsl

from . import api_billing, api_catalog, api_checkout, api_payments
from .errors import ParamError, StripeError
from .routing import Router

router = Router()


def read_body(body: bytes, content_type: str) -> dict:
    if not body:
        return {}
    if "json" in content_type:
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise ParamError("The body is not valid JSON.") from exc
        if not isinstance(data, dict):
            raise ParamError("The body must be a JSON object.")
        return data
    return dict(parse_qsl(body.decode(), keep_blank_values=True))


class ControlCall:
    def __init__(self, emulator, args: dict, body: dict, query: dict):
        self.emulator = emulator
        self.store = emulator.store
        self.args = args
        self.body = body
        self.query = query


@router.add("GET", "/_emulator/health")
def health(call: ControlCall):
    return {"ok": True}


@router.add("POST", "/_emulator/reset")
def reset(call: ControlCall):
    call.emulator.reset()
    return {"reset": True}


# --- faults and rate limits ---------------------------------------------------------------------


@router.add("POST", "/_emulator/faults")
def faults_add(call: ControlCall):
    try:
        return call.emulator.faults.add(**call.body)
    except (TypeError, ValueError) as exc:
        raise ParamError(f"Invalid fault: {exc}") from exc


@router.add("GET", "/_emulator/faults")
def faults_list(call: ControlCall):
    return {"data": call.emulator.faults.list()}


@router.add("DELETE", "/_emulator/faults")
def faults_clear(call: ControlCall):
    call.emulator.faults.clear()
    return {"data": []}


@router.add("POST", "/_emulator/rate_limit")
def rate_limit_set(call: ControlCall):
    try:
        return call.emulator.limiter.configure(
            per_second=call.body.get("per_second"), per_endpoint_per_second=call.body.get("per_endpoint_per_second")
        )
    except (TypeError, ValueError) as exc:
        raise ParamError(f"Invalid rate limit: {exc}") from exc


@router.add("GET", "/_emulator/rate_limit")
def rate_limit_get(call: ControlCall):
    return call.emulator.limiter.status()


@router.add("DELETE", "/_emulator/rate_limit")
def rate_limit_clear(call: ControlCall):
    return call.emulator.limiter.configure()


# --- webhook delivery ----------------------------------------------------------------------------------


@router.add("GET", "/_emulator/webhooks")
def webhooks_status(call: ControlCall):
    return call.emulator.dispatcher.status()


@router.add("POST", "/_emulator/webhooks")
def webhooks_configure(call: ControlCall):
    try:
        call.emulator.dispatcher.configure(**call.body)
    except KeyError as exc:
        raise ParamError(f"Unknown webhook option: {exc.args[0]}") from exc
    except (TypeError, ValueError) as exc:
        raise ParamError(f"Invalid webhook option: {exc}") from exc
    return call.emulator.dispatcher.status()


@router.add("POST", "/_emulator/webhooks/flush")
def webhooks_flush(call: ControlCall):
    return {"flushed": call.emulator.dispatcher.flush()}


@router.add("POST", "/_emulator/webhooks/wait")
def webhooks_wait(call: ControlCall):
    timeout = float(call.body.get("timeout", 10))
    return {"idle": call.emulator.dispatcher.wait_idle(timeout), **call.emulator.dispatcher.status()}


@router.add("GET", "/_emulator/webhooks/attempts")
def webhooks_attempts(call: ControlCall):
    attempts = list(call.emulator.dispatcher.attempts)
    event = call.query.get("event")
    if event:
        attempts = [a for a in attempts if a["event"] == event]
    return {"data": attempts}


# --- requests seen ------------------------------------------------------------------------------------


@router.add("GET", "/_emulator/requests")
def requests_list(call: ControlCall):
    return call.emulator.requests.query(call.query)


@router.add("DELETE", "/_emulator/requests")
def requests_clear(call: ControlCall):
    call.emulator.requests.clear()
    return {"data": []}


# --- what a customer does ----------------------------------------------------------------------------------


@router.add("POST", "/_emulator/checkout/sessions/{id}/complete")
def session_complete(call: ControlCall):
    outcome = call.body.get("outcome", "paid")
    with call.store.lock:
        session = api_checkout.complete_session(
            call.store,
            call.store.require("checkout.session", call.args["id"]),
            outcome,
            email=call.body.get("email"),
            name=call.body.get("name"),
        )
        return copy.deepcopy(session)


@router.add("POST", "/_emulator/checkout/sessions/{id}/settle")
def session_settle(call: ControlCall):
    outcome = call.body.get("outcome", "succeeded")
    if outcome not in ("succeeded", "failed"):
        raise ParamError("outcome must be succeeded or failed", param="outcome")
    with call.store.lock:
        return copy.deepcopy(
            api_checkout.settle_session(
                call.store, call.store.require("checkout.session", call.args["id"]), outcome == "succeeded"
            )
        )


@router.add("POST", "/_emulator/checkout/sessions/{id}/expire")
def session_expire(call: ControlCall):
    with call.store.lock:
        return copy.deepcopy(
            api_checkout.expire_session(
                call.store, call.store.require("checkout.session", call.args["id"]), call.store.emit
            )
        )


@router.add("POST", "/_emulator/payment_links/{id}/sessions")
def payment_link_session(call: ControlCall):
    with call.store.lock:
        link = call.store.require("payment_link", call.args["id"])
        # As if the payer opened the link's URL with these parameters (`client_reference_id`, `prefilled_email`).
        given = api_checkout.link_url_parameters({key: str(value) for key, value in call.body.items()})
        return copy.deepcopy(api_checkout.session_for_link(call.store, call.emulator.public_url, link, **given))


@router.add("POST", "/_emulator/payment_intents/{id}/authenticate")
def intent_authenticate(call: ControlCall):
    """What the customer does on the 3D Secure page: `complete` or `fail`."""
    outcome = call.body.get("outcome", "complete")
    if outcome not in ("complete", "fail"):
        raise ParamError("outcome must be complete or fail", param="outcome")
    with call.store.lock:
        intent = call.store.require("payment_intent", call.args["id"])
        api_payments.finish_authentication(call.store, intent, outcome == "complete", call.store.emit)
        call.store.authentication_returns.pop(intent["id"], None)
        return copy.deepcopy(intent)


def not_found(method: str, path: str) -> StripeError:
    return StripeError(404, f"Unrecognized emulator control request ({method}: {path}).")


@router.add("POST", "/_emulator/customers/{id}/payment_method")
def customer_card(call: ControlCall):
    """Save one of Stripe's test cards as the customer's default (`pm_card_chargeCustomerFail` declines every
    later charge), as the customer would in the portal, without paying what is open."""
    with call.store.lock:
        customer = call.store.require("customer", call.args["id"])
        method = api_billing.save_card(call.store, customer, str(call.body.get("card", "")), call.store.emit)
        api_billing.make_default_card(call.store, customer, method, call.store.emit)
        return copy.deepcopy(method)


@router.add("POST", "/_emulator/customers/{id}/test_clock")
def customer_test_clock(call: ControlCall):
    """Put an existing customer on a test clock, as if it had been created with `test_clock` (Stripe allows that
    only at creation; an app that mirrors its users makes customers without one)."""
    with call.store.lock:
        customer = call.store.require("customer", call.args["id"])
        clock_id = str(call.body.get("test_clock", ""))
        call.store.require("test_helpers.test_clock", clock_id, param="test_clock", status=400)
        customer["test_clock"] = clock_id
        return copy.deepcopy(customer)


# --- a large catalog, for benchmarks ------------------------------------------------------------


def _filled(template, n: int):
    """The template with `{n}` in its strings replaced by n, its values as a form-encoded request sends them."""
    if isinstance(template, dict):
        return {key: _filled(value, n) for key, value in template.items()}
    if isinstance(template, bool):
        return "true" if template else "false"
    return str(template).replace("{n}", str(n))


@router.add("POST", "/_emulator/catalog/seed")
def catalog_seed(call: ControlCall):
    """Products, each with a default price, made at once and without events (a catalog of 100,000 takes a
    second, not the minutes of 100,000 requests). Body: `count`, `first` (the n of the first), `skip` (ns to
    leave out), and `product` and `price` parameters as `/v1/products` and `/v1/prices` take them (JSON),
    whose strings may hold `{n}`."""
    count, first = int(call.body.get("count", 0)), int(call.body.get("first", 1))
    skip = set(call.body.get("skip") or [])
    made = 0
    for n in range(first, first + count):
        if n in skip:
            continue
        product = api_catalog.new_product(_filled(call.body["product"], n), {})
        product["name"] = product["name"] or f"Product {n}"
        if call.body.get("price"):
            data = _filled(call.body["price"], n)
            price = api_catalog.build_price(product["id"], data)
            price["id"] = data.get("id") or price["id"]
            product["default_price"] = price["id"]
            call.store.add(price)
        call.store.add(product)
        made += 1
    return {"made": made}
