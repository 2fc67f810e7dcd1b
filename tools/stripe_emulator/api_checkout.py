"""`/v1/checkout/sessions` and `/v1/payment_links`, and what paying on the hosted page does."""

import re
from urllib.parse import urlparse

from . import api_billing, api_catalog, api_customers, api_payments
from .errors import ParamError, StripeError, missing, no_such, unknown_param
from .listing import paginate
from .params import apply_metadata, as_dict, as_list, boolean, choice, integer, string
from .routing import Call, Router
from .store import Store, new_id, now

router = Router()

MAX_LINE_ITEMS = 100
MAX_QUANTITY = 999_999
SESSION_LIFETIME = 24 * 3600
MIN_SESSION_LIFETIME = 30 * 60


def _invoice_data() -> dict:
    """What an invoice of the session would carry: Stripe returns it even while invoices are off."""
    return {
        "account_tax_ids": None,
        "custom_fields": None,
        "description": None,
        "footer": None,
        "issuer": None,
        "metadata": {},
        "rendering_options": None,
    }


# --- line items ------------------------------------------------------------------------------------


def _line_price(store: Store, item: dict, param: str, *, allow_inline: bool) -> dict:
    """The price of one line: an existing one (`price`), or one made for this session alone (`price_data`)."""
    if "price" in item and "price_data" in item:
        raise ParamError("You may only specify one of these parameters: price, price_data.", param=f"{param}[price]")
    if "price_data" in item:
        if not allow_inline:
            raise unknown_param(f"{param}[price_data]")
        data = as_dict(item["price_data"], f"{param}[price_data]")
        product_id = string(data, "product")
        if not product_id:
            raise missing(f"{param}[price_data][product]")
        if store.get("product", product_id) is None:
            raise StripeError(
                400, f"No such product: '{product_id}'", code="resource_missing", param=f"{param}[price_data][product]"
            )
        # Stripe makes an inactive one-time price for the session alone: no event, not for reuse.
        price = api_catalog.build_price(product_id, data, parent=f"{param}[price_data]")
        price["active"] = False
        store.add(price)
        return price
    price_id = string(item, "price")
    if not price_id:
        raise missing(f"{param}[price]")
    price = store.get("price", price_id)
    if price is None:
        raise StripeError(400, f"No such price: '{price_id}'", code="resource_missing", param=f"{param}[price]")
    if not price["active"]:
        raise ParamError(
            "The price specified is inactive. This field only accepts active prices.", param=f"{param}[price]"
        )
    return price


def _line_items(store: Store, raw, *, allow_inline: bool = False, mode: str = "payment") -> tuple[list[dict], str]:
    """Validated `line_items[n][price]` (or `[price_data]`) + `[quantity]`: Stripe's checks, in Stripe's words.

    A payment takes one-time prices only; a subscription needs a recurring one, all of one billing
    interval, and charges any one-time price once, on its first invoice."""
    items = as_list(raw, "line_items")
    if not items:
        raise missing("line_items")
    if len(items) > MAX_LINE_ITEMS:
        raise ParamError(f"You may only specify up to {MAX_LINE_ITEMS} line items.", param="line_items")
    lines, currencies = [], set()
    for index, raw_item in enumerate(items):
        param = f"line_items[{index}]"
        item = as_dict(raw_item, param)
        try:
            quantity = integer(item, "quantity", minimum=1, maximum=MAX_QUANTITY)
        except ParamError as error:
            error.param = f"{param}[quantity]"
            raise
        if quantity is None:
            raise missing(f"{param}[quantity]")
        price = _line_price(store, item, param, allow_inline=allow_inline)
        product = store.get("product", price["product"])
        if product is None or not product["active"]:
            raise ParamError(
                "The price specified is attached to an inactive product. This field only accepts prices of active "
                "products.",
                param=f"{param}[price]",
            )
        if price["type"] == "recurring" and mode == "payment":
            raise ParamError(
                "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode "
                "or use only one-time prices.",
                param=f"{param}[price]",
            )
        currencies.add(price["currency"])
        lines.append({"price": price, "product": product, "quantity": quantity})
    if len(currencies) > 1:
        raise ParamError("All prices in a Checkout Session must have the same currency.", param="line_items")
    if mode == "subscription":
        intervals = {_interval(line["price"]) for line in lines if line["price"]["type"] == "recurring"}
        if not intervals:
            raise ParamError(
                "You must provide at least one recurring price in `subscription` mode when using prices.",
                param="line_items",
            )
        if len(intervals) > 1:
            raise ParamError(
                "Checkout does not support multiple prices with different billing intervals.", param="line_items"
            )
    return lines, currencies.pop()


def _interval(price: dict) -> tuple[str, int]:
    return price["recurring"]["interval"], price["recurring"]["interval_count"]


def _subscription_data(raw) -> dict:
    data = as_dict(raw, "subscription_data")
    return {
        "trial_period_days": integer(data, "trial_period_days", minimum=1, maximum=730),
        "metadata": apply_metadata({}, data),
    }


def _first_invoice_total(lines: list[dict], subscription_data: dict | None) -> int:
    """What paying the session charges: everything, or with a trial only the one-time prices."""
    trial = bool((subscription_data or {}).get("trial_period_days"))
    return sum(
        line["price"]["unit_amount"] * line["quantity"]
        for line in lines
        if not (trial and line["price"]["type"] == "recurring")
    )


def _items(lines: list[dict]) -> list[dict]:
    return [
        {
            "id": f"li_{new_id('price')[6:]}",
            "object": "item",
            "adjustable_quantity": None,
            "amount_discount": 0,
            "amount_subtotal": line["price"]["unit_amount"] * line["quantity"],
            "amount_tax": 0,
            "amount_total": line["price"]["unit_amount"] * line["quantity"],
            "currency": line["price"]["currency"],
            "description": line["product"]["name"],
            "metadata": {},
            "price": dict(line["price"]),
            "quantity": line["quantity"],
        }
        for line in lines
    ]


def _url(params: dict, name: str, *, required: bool) -> str | None:
    value = string(params, name, required=required, max_length=5000)
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ParamError("Not a valid URL", param=name, code="url_invalid")
    return value


# --- sessions ---------------------------------------------------------------------------------------


def new_session(
    store: Store,
    public_url: str,
    *,
    lines: list[dict],
    currency: str,
    customer: str | None = None,
    customer_email: str | None = None,
    customer_creation: str | None = "if_required",
    success_url: str | None,
    cancel_url: str | None,
    metadata: dict,
    client_reference_id: str | None = None,
    expires_at: int | None = None,
    payment_intent_metadata: dict | None = None,
    payment_link: str | None = None,
    subscription_data: dict | None = None,
) -> dict:
    created = now()
    session_id = new_id("checkout.session")
    mode = "subscription" if subscription_data is not None else "payment"
    total = _first_invoice_total(lines, subscription_data)
    session = {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": total,
        "amount_total": total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": cancel_url,
        "client_reference_id": client_reference_id,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": customer,
        "customer_account": None,
        "customer_creation": None if customer or mode == "subscription" else customer_creation,
        "customer_details": None,
        "customer_email": customer_email,
        "discounts": [],
        "expires_at": expires_at or created + SESSION_LIFETIME,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": {"enabled": False, "invoice_data": _invoice_data()},
        "livemode": False,
        "locale": None,
        "managed_payments": None,
        "metadata": metadata,
        "mode": mode,
        "origin_context": None,
        "payment_intent": None,
        "payment_link": payment_link,
        "payment_method_collection": "always" if mode == "subscription" else "if_required",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page",
        "url": f"{public_url}/c/pay/{session_id}",
        "wallet_options": None,
    }
    store.add(session)
    store.line_items[session_id] = _items(lines)
    store.payment_intent_metadata[session_id] = payment_intent_metadata or {}
    if subscription_data is not None:
        store.subscription_data[session_id] = subscription_data
    return session


@router.add("POST", "/v1/checkout/sessions")
def sessions_create(call: Call) -> dict:
    params = call.params
    mode = choice(params, "mode", ("payment", "setup", "subscription"), required=True)
    if mode == "setup":
        raise ParamError("This emulator supports Checkout in `payment` and `subscription` mode only.", param="mode")
    if mode == "subscription" and "payment_intent_data" in params:
        raise ParamError("You can not pass `payment_intent_data` in `subscription` mode.", param="payment_intent_data")
    if mode == "payment" and "subscription_data" in params:
        raise ParamError("You can only pass `subscription_data` in `subscription` mode.", param="subscription_data")
    ui_modes = ("elements", "embedded_page", "form", "hosted_page")
    if choice(params, "ui_mode", ui_modes, default="hosted_page") != "hosted_page":
        raise ParamError("This emulator supports `ui_mode=hosted_page` only.", param="ui_mode")
    success_url = _url(params, "success_url", required=True)
    cancel_url = _url(params, "cancel_url", required=False)
    customer = string(params, "customer")
    customer_email = string(params, "customer_email")
    if customer and customer_email:
        raise ParamError("You may only specify one of these parameters: customer, customer_email.", param="customer")
    metadata = apply_metadata({}, params)
    intent_data = as_dict(params.get("payment_intent_data", {}), "payment_intent_data")
    intent_metadata = apply_metadata({}, intent_data)
    expires_at = integer(params, "expires_at")
    customer_creation = choice(params, "customer_creation", ("if_required", "always"), default="if_required")
    lines, currency = _line_items(call.store, params.get("line_items"), allow_inline=True, mode=mode)
    created = now()
    if expires_at is not None and not created + MIN_SESSION_LIFETIME <= expires_at <= created + SESSION_LIFETIME:
        raise ParamError(
            "The `expires_at` timestamp must be at least 30 minutes and no more than 24 hours from Checkout Session "
            "creation.",
            param="expires_at",
        )
    if customer:
        found = call.store.get("customer", customer)
        if found is None or found.get("deleted"):
            raise no_such("customer", customer, param="customer", status=400)
    session = new_session(
        call.store,
        call.public_url,
        lines=lines,
        currency=currency,
        customer=customer,
        customer_email=customer_email,
        customer_creation=customer_creation,
        success_url=success_url,
        cancel_url=cancel_url,
        metadata=metadata,
        client_reference_id=string(params, "client_reference_id", max_length=200),
        expires_at=expires_at,
        payment_intent_metadata=intent_metadata,
        subscription_data=_subscription_data(params.get("subscription_data", {})) if mode == "subscription" else None,
    )
    return call.expanded(session)


@router.add("GET", "/v1/checkout/sessions/{id}")
def sessions_retrieve(call: Call) -> dict:
    return call.expanded(call.store.require("checkout.session", call.args["id"]))


@router.add("GET", "/v1/checkout/sessions/{id}/line_items")
def sessions_line_items(call: Call) -> dict:
    session = call.store.require("checkout.session", call.args["id"])
    items = call.store.line_items.get(session["id"], [])
    return call.expanded(paginate(items, call.params, f"/v1/checkout/sessions/{session['id']}/line_items"))


@router.add("GET", "/v1/checkout/sessions")
def sessions_list(call: Call) -> dict:
    params = call.params
    filters = {name: string(params, name) for name in ("customer", "payment_intent", "payment_link", "status")}
    sessions = [
        s
        for s in call.store.newest_first("checkout.session")
        if all(value is None or s.get(name) == value for name, value in filters.items())
    ]
    return call.expanded(paginate(sessions, params, "/v1/checkout/sessions"))


def expire_session(store: Store, session: dict, emit) -> dict:
    if session["status"] != "open":
        raise StripeError(
            400,
            f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status '
            f'of "{session["status"]}".',
        )
    session["status"] = "expired"
    if session["payment_intent"]:
        api_payments.cancel_intent(store.get("payment_intent", session["payment_intent"]), emit, "abandoned")
    emit("checkout.session.expired", session, {"status": "open"})
    return session


@router.add("POST", "/v1/checkout/sessions/{id}/expire")
def sessions_expire(call: Call) -> dict:
    session = call.store.require("checkout.session", call.args["id"])
    return call.expanded(expire_session(call.store, session, call.emit))


def expire_due_sessions(store: Store) -> int:
    """Sessions past `expires_at` expire on their own, as Stripe's do."""
    moment = now()
    due = [s for s in store.objects["checkout.session"].values() if s["status"] == "open" and s["expires_at"] <= moment]
    for session in due:
        expire_session(store, session, store.emit)
    return len(due)


# --- paying (hosted page and control API) ---------------------------------------------------------------


def complete_session(
    store: Store, session: dict, outcome: str, *, email: str | None = None, name: str | None = None
) -> dict:
    """What a customer does on the hosted page: pay (`paid`), be declined, or pay by a delayed method."""
    if outcome not in api_payments.OUTCOMES:
        raise ParamError(f"Invalid outcome: must be one of {', '.join(api_payments.OUTCOMES)}", param="outcome")
    if session["status"] != "open":
        raise StripeError(
            400,
            f"This Checkout Session is {session['status']}; it can no longer be paid.",
            code="checkout_session_not_open",
        )
    emit = store.emit
    customer = store.get("customer", session["customer"]) if session["customer"] else None
    email = email or session["customer_email"] or (customer or {}).get("email") or "customer@example.com"
    name = name or (customer or {}).get("name")
    if session["mode"] == "subscription":
        return _complete_subscription_session(store, session, outcome, customer, email, name)
    if session["payment_intent"]:
        intent = store.get("payment_intent", session["payment_intent"])
    else:
        if customer is None and session["customer_creation"] == "always":
            customer = api_customers.create_customer(store, {"email": email, **({"name": name} if name else {})})
            session["customer"] = customer["id"]
        intent = api_payments.new_payment_intent(
            store,
            amount=session["amount_total"],
            currency=session["currency"],
            customer=session["customer"],
            metadata=dict(store.payment_intent_metadata.get(session["id"], {})),
        )
        session["payment_intent"] = intent["id"]
        emit("payment_intent.created", intent)
    api_payments.attempt_payment(store, intent, outcome, emit, email=email, name=name)
    if outcome == "declined":
        return session
    _close_paid_session(store, session, "paid" if outcome == "paid" else "unpaid", email, name)
    return session


def _complete_subscription_session(
    store: Store, session: dict, outcome: str, customer: dict | None, email: str, name: str | None
) -> dict:
    """Checkout in `subscription` mode: the card is saved on the customer (made now if need be), the
    subscription starts and its first invoice is paid. A declined card starts nothing; the page stays open."""
    if outcome == "delayed":
        raise ParamError("A subscription's first payment cannot be a delayed one in this emulator.", param="outcome")
    if outcome == "declined":
        return session
    if customer is None:
        customer = api_customers.create_customer(store, {"email": email, **({"name": name} if name else {})})
        session["customer"] = customer["id"]
    method = api_billing.save_card(store, customer, "pm_card_visa", store.emit)
    if not customer["invoice_settings"]["default_payment_method"]:
        api_billing.make_default_card(store, customer, method, store.emit)
    settings = store.subscription_data.get(session["id"], {})
    items = store.line_items[session["id"]]
    lines = [{"price": store.get("price", item["price"]["id"]), "quantity": item["quantity"]} for item in items]
    sub = api_billing.new_subscription(
        store,
        customer=customer,
        lines=lines,
        currency=session["currency"],
        trial_days=settings.get("trial_period_days"),
        metadata=dict(settings.get("metadata") or {}),
        payment_method=method["id"],
    )
    session.update(subscription=sub["id"], invoice=sub["latest_invoice"])
    paid = "no_payment_required" if session["amount_total"] == 0 else "paid"
    _close_paid_session(store, session, paid, email, name)
    return session


def _close_paid_session(store: Store, session: dict, payment_status: str, email: str, name: str | None) -> None:
    previous = {"status": "open", "payment_status": "unpaid", "customer_details": None}
    session.update(
        status="complete",
        payment_status=payment_status,
        customer_details={
            "address": {
                "city": None,
                "country": "US",
                "line1": None,
                "line2": None,
                "postal_code": "42424",
                "state": None,
            },
            "business_name": None,
            "email": email,
            "individual_name": None,
            "name": name,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        },
    )
    store.emit("checkout.session.completed", session, previous)


def settle_session(store: Store, session: dict, succeeded: bool) -> dict:
    """A delayed payment method (e.g. a bank debit) clears or fails after the session completed."""
    if session["status"] != "complete" or session["payment_status"] != "unpaid":
        raise StripeError(400, "Only a completed Checkout Session still awaiting payment can be settled.")
    intent = store.get("payment_intent", session["payment_intent"])
    api_payments.settle_payment(store, intent, succeeded, store.emit)
    if succeeded:
        session["payment_status"] = "paid"
        store.emit("checkout.session.async_payment_succeeded", session, {"payment_status": "unpaid"})
    else:
        store.emit("checkout.session.async_payment_failed", session)
    return session


# --- payment links ----------------------------------------------------------------------------------------


@router.add("POST", "/v1/payment_links")
def payment_links_create(call: Call) -> dict:
    params = call.params
    recurring = any(
        (call.store.get("price", item.get("price") or "") or {}).get("type") == "recurring"
        for item in as_list(params.get("line_items", []), "line_items")
        if isinstance(item, dict)
    )
    mode = "subscription" if recurring else "payment"
    lines, currency = _line_items(call.store, params.get("line_items"), mode=mode)
    metadata = apply_metadata({}, params)
    if recurring and "payment_intent_data" in params:
        raise ParamError(
            "You can not pass `payment_intent_data` when the line items include a recurring price.",
            param="payment_intent_data",
        )
    if not recurring and "subscription_data" in params:
        raise ParamError(
            "You can only pass `subscription_data` when the line items include a recurring price.",
            param="subscription_data",
        )
    subscription_data = _subscription_data(params.get("subscription_data", {})) if recurring else None
    intent_data = as_dict(params.get("payment_intent_data", {}), "payment_intent_data")
    after = as_dict(params.get("after_completion", {}), "after_completion")
    redirect_url = None
    if after.get("type") == "redirect":
        redirect_url = _url(as_dict(after.get("redirect", {}), "after_completion[redirect]"), "url", required=True)
    link_id = new_id("payment_link")
    link = {
        "id": link_id,
        "object": "payment_link",
        "active": True,
        "after_completion": {"redirect": {"url": redirect_url}, "type": "redirect"}
        if redirect_url
        else {"hosted_confirmation": {"custom_message": None}, "type": "hosted_confirmation"},
        "allow_promotion_codes": boolean(params, "allow_promotion_codes", default=False),
        "application": None,
        "application_fee_amount": None,
        "application_fee_percent": None,
        "automatic_tax": {"enabled": False, "liability": None},
        "billing_address_collection": "auto",
        "consent_collection": None,
        "currency": currency,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer_creation": choice(params, "customer_creation", ("if_required", "always"), default="if_required"),
        "inactive_message": None,
        "invoice_creation": {"enabled": False, "invoice_data": _invoice_data()},
        "livemode": False,
        "managed_payments": None,
        "metadata": metadata,
        "on_behalf_of": None,
        "payment_intent_data": {
            "capture_method": None,
            "description": string(intent_data, "description"),
            "metadata": apply_metadata({}, intent_data),
            "setup_future_usage": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "transfer_group": None,
        },
        "payment_method_collection": "always",
        "payment_method_options": None,
        "payment_method_types": None,
        "phone_number_collection": {"enabled": False},
        "restrictions": None,
        "shipping_address_collection": None,
        "shipping_options": [],
        "submit_type": "auto",
        "subscription_data": {
            "description": None,
            "invoice_settings": {"issuer": {"type": "self"}},
            "metadata": subscription_data["metadata"],
            "trial_period_days": subscription_data["trial_period_days"],
            "trial_settings": None,
        }
        if subscription_data
        else None,
        "tax_id_collection": {"enabled": False, "required": "never"},
        "transfer_data": None,
        "url": f"{call.public_url}/b/{link_id.removeprefix('plink_')}",
    }
    call.store.add(link)
    call.store.line_items[link_id] = _items(lines)
    if subscription_data is not None:
        call.store.subscription_data[link_id] = subscription_data
    call.emit("payment_link.created", link)
    return call.expanded(link)


@router.add("GET", "/v1/payment_links/{id}")
def payment_links_retrieve(call: Call) -> dict:
    return call.expanded(call.store.require("payment_link", call.args["id"]))


@router.add("POST", "/v1/payment_links/{id}")
def payment_links_update(call: Call) -> dict:
    link = call.store.require("payment_link", call.args["id"])
    changes = {"metadata": apply_metadata(link["metadata"], call.params)}
    if "active" in call.params:
        changes["active"] = boolean(call.params, "active")
    call.apply_changes(link, changes, "payment_link.updated")
    return call.expanded(link)


@router.add("GET", "/v1/payment_links/{id}/line_items")
def payment_links_line_items(call: Call) -> dict:
    link = call.store.require("payment_link", call.args["id"])
    return call.expanded(
        paginate(call.store.line_items.get(link["id"], []), call.params, f"/v1/payment_links/{link['id']}/line_items")
    )


@router.add("GET", "/v1/payment_links")
def payment_links_list(call: Call) -> dict:
    active = boolean(call.params, "active")
    links = [link for link in call.store.newest_first("payment_link") if active is None or link["active"] == active]
    return call.expanded(paginate(links, call.params, "/v1/payment_links"))


# What Stripe takes from a payment link's URL (`?client_reference_id=...`); an invalid value is dropped silently.
_REFERENCE = re.compile(r"[A-Za-z0-9_-]{1,200}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def link_url_parameters(query: dict) -> dict:
    """The URL parameters of a payment link a payer may add, as Stripe copies them onto the session."""
    found = {}
    reference = query.get("client_reference_id") or ""
    if _REFERENCE.fullmatch(reference):
        found["client_reference_id"] = reference
    email = query.get("prefilled_email") or ""
    if _EMAIL.fullmatch(email) and len(email) <= 512:
        found["customer_email"] = email
    return found


def session_for_link(
    store: Store,
    public_url: str,
    link: dict,
    *,
    client_reference_id: str | None = None,
    customer_email: str | None = None,
) -> dict:
    """A customer opening a payment link gets a fresh Checkout Session of their own.

    Whoever opens the link chooses `client_reference_id` and the prefilled email (URL
    parameters): Stripe copies them onto the session, so nothing in them can be trusted.
    """
    if not link["active"]:
        raise StripeError(400, "This payment link is no longer active.", code="payment_link_inactive")
    items = store.line_items[link["id"]]
    lines = [
        {
            "price": store.get("price", item["price"]["id"]),
            "product": store.get("product", item["price"]["product"]),
            "quantity": item["quantity"],
        }
        for item in items
    ]
    redirect = (link["after_completion"].get("redirect") or {}).get("url")
    return new_session(
        store,
        public_url,
        lines=lines,
        currency=link["currency"],
        customer_creation=link["customer_creation"],
        success_url=redirect or f"{public_url}/b/{link['id'].removeprefix('plink_')}/thanks",
        cancel_url=None,
        # Stripe copies a payment link's metadata onto each session it creates.
        metadata=dict(link["metadata"]),
        payment_intent_metadata=dict(link["payment_intent_data"]["metadata"]),
        payment_link=link["id"],
        client_reference_id=client_reference_id,
        customer_email=customer_email,
        subscription_data=store.subscription_data.get(link["id"]),
    )
