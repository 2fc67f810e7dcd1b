"""`/v1/products`, `/v1/prices` and `/v1/products/{id}/features`."""

from .currencies import MAX_AMOUNT, SUPPORTED
from .errors import ParamError, StripeError, missing, unknown_param
from .listing import paginate, search
from .params import apply_metadata, as_dict, boolean, choice, integer, string, string_list
from .routing import Call, Router
from .store import new_id, now

router = Router()

INTERVALS = ("day", "week", "month", "year")
PRODUCT_SEARCH_FIELDS = {"active", "created", "description", "metadata", "name", "shippable", "url"}
PRICE_SEARCH_FIELDS = {"active", "created", "currency", "lookup_key", "metadata", "product", "type"}


# --- prices ---------------------------------------------------------------------------------


def _recurring(raw, param: str) -> dict | None:
    if raw in (None, ""):
        return None
    recurring = as_dict(raw, param)
    interval = choice(recurring, "interval", INTERVALS, required=True)
    count = integer(recurring, "interval_count", minimum=1, maximum=365) or 1
    return {
        "interval": interval,
        "interval_count": count,
        "meter": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def validate_currency(currency: str | None, param: str = "currency") -> str:
    if not currency:
        raise missing(param)
    currency = currency.lower()
    if currency not in SUPPORTED:
        raise ParamError(
            f"Invalid currency: {currency}. Stripe currently supports these currencies: {', '.join(sorted(SUPPORTED))}",
            param=param,
            code="invalid_currency",
        )
    return currency


def _amount(params: dict) -> int:
    amount = integer(params, "unit_amount", minimum=0)
    if amount is None:
        raise missing("unit_amount")
    if amount > MAX_AMOUNT:
        raise ParamError(
            f"This value must be less than or equal to {MAX_AMOUNT} (it currently is '{amount}').",
            param="unit_amount",
            code="amount_too_large",
        )
    return amount


def build_price(product_id: str, data: dict, *, parent: str | None = None) -> dict:
    """A price from creation parameters: those of `/v1/prices`, or a product's `default_price_data`."""
    try:
        currency = validate_currency(string(data, "currency"))
        scheme = choice(data, "billing_scheme", ("per_unit", "tiered"), default="per_unit")
        tiers_mode = _tiers_mode(data) if scheme == "tiered" else None
        amount = _amount(data) if scheme == "per_unit" else None
        recurring = _recurring(data.get("recurring"), "recurring")
        tax_behavior = choice(data, "tax_behavior", ("exclusive", "inclusive", "unspecified"), default="unspecified")
        metadata = apply_metadata({}, data)
    except ParamError as error:
        if parent and error.param:
            # Errors name the nested parameter the way the client wrote it.
            root, _, rest = error.param.partition("[")
            qualified = f"{parent}[{root}]" + (f"[{rest}" if rest else "")
            error.message = error.message.replace(f"param: {error.param}", f"param: {qualified}")
            error.param = qualified
        raise
    return {
        "id": new_id("price"),
        "object": "price",
        "active": boolean(data, "active", default=True),
        "billing_scheme": scheme,
        "created": now(),
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": string(data, "lookup_key", max_length=200),
        "metadata": metadata,
        "nickname": string(data, "nickname"),
        "product": product_id,
        "recurring": recurring,
        "tax_behavior": tax_behavior,
        "tiers_mode": tiers_mode,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": amount,
        "unit_amount_decimal": None if amount is None else str(amount),
    }


def _tiers_mode(data: dict) -> str:
    """A tiered price is priced by its tiers (kept by Stripe, not shown on the price): none here is an error."""
    mode = choice(data, "tiers_mode", ("graduated", "volume"))
    if mode is None:
        raise missing("tiers_mode")
    if not isinstance(data.get("tiers"), list) or not data["tiers"]:
        raise missing("tiers")
    return mode


def _live_product(store, product_id: str, param: str) -> dict:
    return store.require("product", product_id, param=param, status=400 if param != "id" else 404)


@router.add("POST", "/v1/prices")
def prices_create(call: Call) -> dict:
    params = call.params
    if "product" in params and "product_data" in params:
        raise ParamError("You may only specify one of these parameters: product, product_data.", param="product")
    if "product_data" in params:
        product_data = as_dict(params["product_data"], "product_data")
        product = None
    else:
        product_id = string(params, "product", required=True)
        product = _live_product(call.store, product_id, "product")
    price = build_price(product["id"] if product else "", params)
    if product is None:
        product = new_product(product_data, {})
        call.store.add(product)
        call.emit("product.created", product)
    price["product"] = product["id"]
    call.store.add(price)
    call.emit("price.created", price)
    return call.expanded(price)


@router.add("GET", "/v1/prices/search")
def prices_search(call: Call) -> dict:
    return search(call.store.newest_first("price"), call.params, "/v1/prices/search", PRICE_SEARCH_FIELDS)


@router.add("GET", "/v1/prices/{id}")
def prices_retrieve(call: Call) -> dict:
    price = call.store.require("price", call.args["id"])
    return call.expanded(price)


@router.add("POST", "/v1/prices/{id}")
def prices_update(call: Call) -> dict:
    for immutable in ("unit_amount", "currency", "recurring", "product", "unit_amount_decimal"):
        if immutable in call.params:
            raise unknown_param(immutable)
    price = call.store.require("price", call.args["id"])
    changes = {"metadata": apply_metadata(price["metadata"], call.params)}
    if "active" in call.params:
        changes["active"] = boolean(call.params, "active")
    for name in ("nickname", "lookup_key"):
        if name in call.params:
            changes[name] = string(call.params, name) or None
    if "tax_behavior" in call.params:
        changes["tax_behavior"] = choice(call.params, "tax_behavior", ("exclusive", "inclusive", "unspecified"))
    call.apply_changes(price, changes, "price.updated")
    return call.expanded(price)


@router.add("GET", "/v1/prices")
def prices_list(call: Call) -> dict:
    params = call.params
    active = boolean(params, "active")
    product = string(params, "product")
    currency = string(params, "currency")
    kind = choice(params, "type", ("one_time", "recurring"))
    lookup_keys = set(string_list(params, "lookup_keys"))
    prices = [
        price
        for price in call.store.newest_first("price")
        if (active is None or price["active"] == active)
        and (product is None or price["product"] == product)
        and (currency is None or price["currency"] == currency.lower())
        and (kind is None or price["type"] == kind)
        and (not lookup_keys or price["lookup_key"] in lookup_keys)
    ]
    return call.expanded(paginate(prices, params, "/v1/prices"))


# --- products ---------------------------------------------------------------------------------------


def _product_fields(params: dict) -> dict:
    fields: dict = {}
    if "name" in params:
        name = string(params, "name", max_length=250)
        if not name:
            raise ParamError("You must supply a name for the product.", param="name")
        fields["name"] = name
    if "active" in params:
        fields["active"] = boolean(params, "active")
    for name in ("description", "statement_descriptor", "tax_code", "unit_label", "url"):
        if name in params:
            fields[name] = string(params, name) or None
    if "shippable" in params:
        fields["shippable"] = boolean(params, "shippable")
    if "images" in params:
        fields["images"] = string_list(params, "images")
    if "package_dimensions" in params:
        raw = params["package_dimensions"]
        dimensions = as_dict(raw, "package_dimensions")
        fields["package_dimensions"] = (
            {name: _dimension(dimensions, name) for name in ("height", "length", "weight", "width")} if raw else None
        )
    return fields


def _dimension(dimensions: dict, name: str) -> float:
    param = f"package_dimensions[{name}]"
    try:
        value = float(dimensions[name])
    except KeyError:
        raise missing(param) from None
    except (TypeError, ValueError):
        raise ParamError(f"Invalid decimal: {dimensions[name]}", param=param) from None
    if value <= 0:
        raise ParamError(f"{param} must be greater than 0.", param=param)
    return value


def new_product(params: dict, fields: dict) -> dict:
    created = now()
    product = {
        "id": string(params, "id") or new_id("product"),
        "object": "product",
        "active": True,
        "created": created,
        "default_price": None,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": apply_metadata({}, params),
        "name": None,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": created,
        "url": None,
    }
    product.update(fields or _product_fields(params))
    return product


@router.add("POST", "/v1/products")
def products_create(call: Call) -> dict:
    params = call.params
    if not params.get("name"):
        raise missing("name")
    fields = _product_fields(params)
    price = None
    if "default_price_data" in params:
        data = as_dict(params["default_price_data"], "default_price_data")
        price = build_price("", data, parent="default_price_data")
    product = new_product(params, fields)
    if call.store.get("product", product["id"]) is not None:
        raise StripeError(400, "Product already exists.", code="resource_already_exists", param="id")
    if price:
        price["product"] = product["id"]
        product["default_price"] = price["id"]
    call.store.add(product)
    call.emit("product.created", product)
    if price:
        call.store.add(price)
        call.emit("price.created", price)
    return call.expanded(product)


@router.add("GET", "/v1/products/search")
def products_search(call: Call) -> dict:
    return search(call.store.newest_first("product"), call.params, "/v1/products/search", PRODUCT_SEARCH_FIELDS)


@router.add("GET", "/v1/products/{id}")
def products_retrieve(call: Call) -> dict:
    return call.expanded(_live_product(call.store, call.args["id"], "id"))


@router.add("POST", "/v1/products/{id}")
def products_update(call: Call) -> dict:
    product = _live_product(call.store, call.args["id"], "id")
    changes = _product_fields(call.params)
    changes["metadata"] = apply_metadata(product["metadata"], call.params)
    if "default_price" in call.params:
        price_id = string(call.params, "default_price") or None
        if price_id:
            price = call.store.get("price", price_id)
            if price is None or price["product"] != product["id"]:
                raise StripeError(400, f"No such price: '{price_id}'", code="resource_missing", param="default_price")
            if not price["active"]:
                raise ParamError("The price must be active to be set as the default price.", param="default_price")
        changes["default_price"] = price_id
    if any(product[key] != value for key, value in changes.items()):
        changes["updated"] = now()
    call.apply_changes(product, changes, "product.updated")
    return call.expanded(product)


@router.add("DELETE", "/v1/products/{id}")
def products_delete(call: Call) -> dict:
    product = _live_product(call.store, call.args["id"], "id")
    if any(price["product"] == product["id"] for price in call.store.objects["price"].values()):
        raise ParamError(
            "This product cannot be deleted because it has one or more user-created prices.", param="id", code=None
        )
    call.store.remove("product", product["id"])
    call.emit("product.deleted", product)
    return {"id": product["id"], "object": "product", "deleted": True}


@router.add("GET", "/v1/products")
def products_list(call: Call) -> dict:
    active = boolean(call.params, "active")
    ids = set(string_list(call.params, "ids"))
    products = [
        product
        for product in call.store.newest_first("product")
        if (active is None or product["active"] == active) and (not ids or product["id"] in ids)
    ]
    return call.expanded(paginate(products, call.params, "/v1/products"))


@router.add("GET", "/v1/products/{id}/features")
def product_features_list(call: Call) -> dict:
    _live_product(call.store, call.args["id"], "id")
    return paginate([], call.params, f"/v1/products/{call.args['id']}/features")
