"""Which parameters Stripe accepts on each endpoint, read from the official SDK's generated parameter types
(`stripe.params`), not from a list kept by hand.

The emulator accepts every parameter Stripe accepts on the endpoints it implements, even where it
ignores the effect (`package_dimensions`, `currency_options`, most Checkout Session options), and
refuses any other with Stripe's error naming the first unknown one (`line_items[0][colour]`).
"""

import importlib
import sys
import types
import typing
from dataclasses import dataclass
from functools import cache

import stripe
import stripe.params

from .errors import unknown_param

# "METHOD pattern" -> the SDK's parameter type of that request.
ENDPOINT_PARAMS = {
    "POST /v1/customers": "CustomerCreateParams",
    "GET /v1/customers": "CustomerListParams",
    "GET /v1/customers/search": "CustomerSearchParams",
    "GET /v1/customers/{id}": "CustomerRetrieveParams",
    "POST /v1/customers/{id}": "CustomerUpdateParams",
    "DELETE /v1/customers/{id}": "CustomerDeleteParams",
    "POST /v1/products": "ProductCreateParams",
    "GET /v1/products": "ProductListParams",
    "GET /v1/products/search": "ProductSearchParams",
    "GET /v1/products/{id}": "ProductRetrieveParams",
    "POST /v1/products/{id}": "ProductUpdateParams",
    "DELETE /v1/products/{id}": "ProductDeleteParams",
    "GET /v1/products/{id}/features": "ProductFeatureListParams",
    "POST /v1/prices": "PriceCreateParams",
    "GET /v1/prices": "PriceListParams",
    "GET /v1/prices/search": "PriceSearchParams",
    "GET /v1/prices/{id}": "PriceRetrieveParams",
    "POST /v1/prices/{id}": "PriceUpdateParams",
    "POST /v1/checkout/sessions": "checkout.SessionCreateParams",
    "GET /v1/checkout/sessions": "checkout.SessionListParams",
    "GET /v1/checkout/sessions/{id}": "checkout.SessionRetrieveParams",
    "GET /v1/checkout/sessions/{id}/line_items": "checkout.SessionLineItemListParams",
    "POST /v1/checkout/sessions/{id}/expire": "checkout.SessionExpireParams",
    "POST /v1/payment_links": "PaymentLinkCreateParams",
    "GET /v1/payment_links": "PaymentLinkListParams",
    "GET /v1/payment_links/{id}": "PaymentLinkRetrieveParams",
    "POST /v1/payment_links/{id}": "PaymentLinkUpdateParams",
    "GET /v1/payment_links/{id}/line_items": "PaymentLinkListLineItemsParams",
    "POST /v1/payment_intents": "PaymentIntentCreateParams",
    "GET /v1/payment_intents": "PaymentIntentListParams",
    "GET /v1/payment_intents/{id}": "PaymentIntentRetrieveParams",
    "POST /v1/payment_intents/{id}": "PaymentIntentUpdateParams",
    "POST /v1/payment_intents/{id}/confirm": "PaymentIntentConfirmParams",
    "POST /v1/payment_intents/{id}/cancel": "PaymentIntentCancelParams",
    "GET /v1/charges": "ChargeListParams",
    "GET /v1/charges/{id}": "ChargeRetrieveParams",
    "POST /v1/charges/{id}": "ChargeUpdateParams",
    "POST /v1/refunds": "RefundCreateParams",
    "GET /v1/refunds": "RefundListParams",
    "GET /v1/refunds/{id}": "RefundRetrieveParams",
    "POST /v1/refunds/{id}": "RefundUpdateParams",
    "GET /v1/balance_transactions": "BalanceTransactionListParams",
    "GET /v1/balance_transactions/{id}": "BalanceTransactionRetrieveParams",
    "GET /v1/payment_methods/{id}": "PaymentMethodRetrieveParams",
    "POST /v1/payment_methods/{id}/attach": "PaymentMethodAttachParams",
    "GET /v1/subscriptions": "SubscriptionListParams",
    "GET /v1/subscriptions/{id}": "SubscriptionRetrieveParams",
    "POST /v1/subscriptions/{id}": "SubscriptionUpdateParams",
    "DELETE /v1/subscriptions/{id}": "SubscriptionCancelParams",
    "GET /v1/invoices": "InvoiceListParams",
    "GET /v1/invoices/{id}": "InvoiceRetrieveParams",
    "GET /v1/invoices/{id}/lines": "InvoiceListLinesParams",
    "POST /v1/invoices/{id}/pay": "InvoicePayParams",
    "POST /v1/test_helpers/test_clocks": "test_helpers.TestClockCreateParams",
    "GET /v1/test_helpers/test_clocks": "test_helpers.TestClockListParams",
    "GET /v1/test_helpers/test_clocks/{id}": "test_helpers.TestClockRetrieveParams",
    "POST /v1/test_helpers/test_clocks/{id}/advance": "test_helpers.TestClockAdvanceParams",
    "DELETE /v1/test_helpers/test_clocks/{id}": "test_helpers.TestClockDeleteParams",
    "POST /v1/billing_portal/sessions": "billing_portal.SessionCreateParams",
    "GET /v1/billing_portal/configurations": "billing_portal.ConfigurationListParams",
    "GET /v1/events": "EventListParams",
    "GET /v1/events/{id}": "EventRetrieveParams",
    "POST /v1/webhook_endpoints": "WebhookEndpointCreateParams",
    "GET /v1/webhook_endpoints": "WebhookEndpointListParams",
    "GET /v1/webhook_endpoints/{id}": "WebhookEndpointRetrieveParams",
    "POST /v1/webhook_endpoints/{id}": "WebhookEndpointUpdateParams",
    "DELETE /v1/webhook_endpoints/{id}": "WebhookEndpointDeleteParams",
    "GET /v1/account": "AccountRetrieveCurrentParams",
    "GET /v1/accounts/{id}": "AccountRetrieveParams",
}
# The SDK's options of a request (its key, version, retries): never sent as parameters.
REQUEST_OPTIONS = frozenset(stripe.RequestOptions.__annotations__)
# What Stripe.js and the mobile SDKs send beside a publishable key, which the server SDK never does.
CLIENT_SIDE = frozenset({"client_secret"})


def params_type(endpoint: str) -> type | None:
    name = ENDPOINT_PARAMS.get(endpoint)
    if name is None:
        return None
    *package, type_name = name.split(".")
    module = importlib.import_module(".".join(["stripe.params", *package]))
    return getattr(module, type_name)


def check_params(endpoint: str, params: dict, *, publishable: bool = False) -> None:
    """Refuse, with Stripe's error, the first parameter Stripe does not accept on this endpoint."""
    typed = params_type(endpoint)
    if typed is None:
        return
    extra = CLIENT_SIDE if publishable else frozenset()
    found = _first_unknown(params, typed, "", extra)
    if found:
        raise unknown_param(found)


def _first_unknown(params: dict, typed: type, prefix: str, extra: frozenset = frozenset()) -> str | None:
    fields = _fields(typed)
    for key, value in params.items():
        where = f"{prefix}[{key}]" if prefix else key
        if key not in fields and key not in extra:
            return where
        if key in fields:
            found = _first_unknown_in(value, fields[key], where)
            if found:
                return found
    return None


def _first_unknown_in(value, options: tuple, where: str) -> str | None:
    nested = [option for option in options if _is_typed_dict(option)]
    if isinstance(value, dict) and nested:
        return _first_unknown(value, nested[0], where)
    lists = [option for option in options if isinstance(option, ListOf)]
    if isinstance(value, list) and lists:
        for position, item in enumerate(value):
            found = _first_unknown_in(item, lists[0].items, f"{where}[{position}]")
            if found:
                return found
    return None


@dataclass(frozen=True)
class ListOf:
    items: tuple


@cache
def _fields(typed: type) -> dict[str, tuple]:
    """Each field of a parameter type, with the types its value may take (unions flattened)."""
    module = sys.modules[typed.__module__]
    found = {}
    for klass in reversed(typed.__mro__):
        for name, annotation in getattr(klass, "__annotations__", {}).items():
            if name not in REQUEST_OPTIONS:
                found[name] = _flatten(annotation, module)
    return found


def _flatten(annotation, module: types.ModuleType) -> tuple:
    if isinstance(annotation, typing.ForwardRef):
        annotation = annotation.__forward_arg__
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing), dict(vars(module)))  # noqa: S307 - the SDK's own annotations
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return tuple(option for arg in typing.get_args(annotation) for option in _flatten(arg, module))
    if origin in (typing.NotRequired, typing.Required):
        return _flatten(typing.get_args(annotation)[0], module)
    if origin is list:
        return (ListOf(_flatten(typing.get_args(annotation)[0], module)),)
    return (annotation,)


def _is_typed_dict(option) -> bool:
    return isinstance(option, type) and issubclass(option, dict) and hasattr(option, "__annotations__")
