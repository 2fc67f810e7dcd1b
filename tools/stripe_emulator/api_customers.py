"""`/v1/customers` and `/v1/account`."""

import re

from . import api_billing
from .errors import ParamError, no_such
from .listing import paginate, search
from .params import apply_metadata, as_dict, string, string_list
from .routing import Call, Router
from .store import new_id, now

router = Router()

SEARCH_FIELDS = {"created", "email", "metadata", "name", "phone"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ADDRESS_FIELDS = ("city", "country", "line1", "line2", "postal_code", "state")


def _address(value, param: str) -> dict:
    raw = as_dict(value, param)
    return {field: raw.get(field) or None for field in _ADDRESS_FIELDS}


def _profile(params: dict) -> dict:
    """The customer fields a create or update sets."""
    fields: dict = {}
    for name in ("description", "name", "phone"):
        if name in params:
            fields[name] = string(params, name, max_length=350) or None
    if "email" in params:
        email = string(params, "email", max_length=512) or None
        if email and not _EMAIL.match(email):
            raise ParamError(f"Invalid email address: {email}", param="email", code="email_invalid")
        fields["email"] = email
    if "address" in params:
        fields["address"] = _address(params["address"], "address") if params["address"] else None
    if "shipping" in params:
        fields["shipping"] = as_dict(params["shipping"], "shipping") or None
    if "preferred_locales" in params:
        fields["preferred_locales"] = string_list(params, "preferred_locales")
    return fields


def _customer(customer_id: str, fields: dict, metadata: dict) -> dict:
    customer = {
        "id": customer_id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": now(),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "invoice_prefix": customer_id[4:12].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": metadata,
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
    customer.update(fields)
    return customer


def _live_customer(call: Call, param: str = "id") -> dict:
    customer = call.store.get("customer", call.args["id"])
    if customer is None or customer.get("deleted"):
        raise no_such("customer", call.args["id"], param=param)
    return customer


def create_customer(store, params: dict, call: Call | None = None) -> dict:
    """Also used when Checkout creates a customer for a guest."""
    fields = _profile(params)
    clock_id = string(params, "test_clock")
    if clock_id:
        store.require("test_helpers.test_clock", clock_id, param="test_clock", status=400)
        fields["test_clock"] = clock_id
    customer = _customer(new_id("customer"), fields, apply_metadata({}, params))
    store.add(customer)
    if call:
        call.emit("customer.created", customer)
    else:
        store.emit("customer.created", customer)
    return customer


@router.add("POST", "/v1/customers")
def customers_create(call: Call) -> dict:
    return call.expanded(create_customer(call.store, call.params, call))


@router.add("GET", "/v1/customers/search")
def customers_search(call: Call) -> dict:
    live = [c for c in call.store.newest_first("customer") if not c.get("deleted")]
    return search(live, call.params, "/v1/customers/search", SEARCH_FIELDS)


@router.add("GET", "/v1/customers/{id}")
def customers_retrieve(call: Call) -> dict:
    customer = call.store.get("customer", call.args["id"])
    if customer is None:
        raise no_such("customer", call.args["id"])
    # A deleted customer is still answered, as a stub saying so.
    return customer if customer.get("deleted") else call.expanded(customer)


@router.add("POST", "/v1/customers/{id}")
def customers_update(call: Call) -> dict:
    customer = _live_customer(call)
    changes = _profile(call.params)
    changes["metadata"] = apply_metadata(customer["metadata"], call.params)
    call.apply_changes(customer, changes, "customer.updated")
    settings = as_dict(call.params.get("invoice_settings", {}), "invoice_settings")
    if "default_payment_method" in settings:
        method_id = string(settings, "default_payment_method")
        method = call.store.get("payment_method", method_id or "")
        if method is None or method["customer"] != customer["id"]:
            raise ParamError(
                f"No such PaymentMethod: '{method_id}'; it must be attached to the customer first.",
                param="invoice_settings[default_payment_method]",
                code="resource_missing",
            )
        api_billing.make_default_card(call.store, customer, method, call.emit)
    return call.expanded(customer)


@router.add("DELETE", "/v1/customers/{id}")
def customers_delete(call: Call) -> dict:
    customer = _live_customer(call)
    stub = {"id": customer["id"], "object": "customer", "deleted": True}
    call.store.add(stub)
    call.emit("customer.deleted", customer)
    return stub


@router.add("GET", "/v1/customers")
def customers_list(call: Call) -> dict:
    email = string(call.params, "email")
    customers = [
        c
        for c in call.store.newest_first("customer")
        if not c.get("deleted") and (email is None or (c.get("email") or "") == email)
    ]
    page = paginate(customers, call.params, "/v1/customers")
    return call.expanded(page)


@router.add("GET", "/v1/account")
def account_retrieve(call: Call) -> dict:
    return call.store.account


@router.add("GET", "/v1/accounts/{id}")
def accounts_retrieve(call: Call) -> dict:
    if call.args["id"] != call.store.account["id"]:
        raise no_such("account", call.args["id"])
    return call.store.account
