"""Fields Stripe leaves out of an object unless asked with `expand[]` (`line_items`, a customer's `sources`, ...)."""

from .store import Store

MISSING = object()


def _empty_list(url: str) -> dict:
    return {"object": "list", "data": [], "has_more": False, "url": url}


def line_items_list(store: Store, owner: dict) -> dict:
    base = "/v1/checkout/sessions" if owner["object"] == "checkout.session" else "/v1/payment_links"
    return {
        "object": "list",
        "data": store.line_items.get(owner["id"], []),
        "has_more": False,
        "url": f"{base}/{owner['id']}/line_items",
    }


def resolver(store: Store):
    """Answers `MISSING` for a field that cannot be expanded on that object."""

    def resolve(node: dict, key: str):
        kind = node.get("object")
        if kind in ("checkout.session", "payment_link") and key == "line_items":
            return line_items_list(store, node)
        if kind == "customer":
            if key in ("sources", "subscriptions", "tax_ids"):
                return _empty_list(f"/v1/customers/{node['id']}/{key}")
            if key == "cash_balance":
                return None
            if key == "invoice_credit_balance":
                return {}
        if kind == "price":
            if key == "currency_options":
                return {
                    node["currency"]: {
                        "custom_unit_amount": None,
                        "tax_behavior": node["tax_behavior"],
                        "unit_amount": node["unit_amount"],
                        "unit_amount_decimal": node["unit_amount_decimal"],
                    }
                }
            if key == "tiers":
                return None
        return MISSING

    return resolve
