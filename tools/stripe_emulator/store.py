"""The emulator's state: every object by type and id, in creation order, behind one lock."""

import copy
import json
import random
import string
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .errors import no_such

ALPHABET = string.ascii_letters + string.digits
API_VERSION = "2026-08-26.dahlia"

# Object type -> id prefix. Lists are answered newest first, as Stripe does.
PREFIXES = {
    "customer": "cus",
    "product": "prod",
    "price": "price",
    "checkout.session": "cs_test",
    "payment_link": "plink",
    "payment_intent": "pi",
    "charge": "ch",
    "refund": "re",
    "balance_transaction": "txn",
    "payment_method": "pm",
    "event": "evt",
    "webhook_endpoint": "we",
    "subscription": "sub",
    "subscription_item": "si",
    "invoice": "in",
    "line_item": "il",
    "test_helpers.test_clock": "clock",
    "billing_portal.session": "bps",
}
TYPE_BY_PREFIX = {prefix: kind for kind, prefix in PREFIXES.items()}
# How Stripe names a type in "No such ..." errors, where it differs from the object name.
ERROR_NAMES = {
    "balance_transaction": "balance transaction",
    "payment_method": "PaymentMethod",
    "test_helpers.test_clock": "test_helpers.test_clock",
    "billing_portal.session": "billing_portal.session",
}
_random = random.Random()
# What the store keeps beside the objects, by name; saved, loaded and reset with them.
SIDE_TABLES = (
    "webhook_secrets",
    "line_items",
    "payment_intent_metadata",
    "authentication_returns",
    "pending_invoice_items",
    "billing_marks",
    "subscription_data",
)


def new_id(kind: str, length: int = 24) -> str:
    prefix = PREFIXES[kind]
    if kind == "checkout.session":
        length = 58
    return f"{prefix}_{''.join(_random.choices(ALPHABET, k=length))}"


def type_of_id(object_id: str) -> str | None:
    if object_id.startswith("cs_test_"):
        return "checkout.session"
    return TYPE_BY_PREFIX.get(object_id.split("_", 1)[0])


def now() -> int:
    return int(time.time())


class Store:
    """Objects by type. Callers hold `lock` while they read-modify-write."""

    def __init__(self):
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, dict]] = {kind: {} for kind in PREFIXES}
        # Secrets are returned once, at creation, like Stripe; kept here for signing.
        self.webhook_secrets: dict[str, str] = {}
        # Line items of sessions and payment links are not fields of those objects in Stripe either.
        self.line_items: dict[str, list[dict]] = {}
        self.payment_intent_metadata: dict[str, dict] = {}
        # Where the customer goes back after 3D Secure (the `return_url` given at confirm), by intent.
        self.authentication_returns: dict[str, str] = {}
        # Proration lines waiting for a subscription's next invoice, and what billing has already
        # done once (a trial's warning, a period's upcoming notice, an invoice's first failure).
        self.pending_invoice_items: dict[str, list[dict]] = {}
        self.billing_marks: dict[str, dict] = {}
        # What a subscription-mode Checkout Session will start (`subscription_data`), by session or link.
        self.subscription_data: dict[str, dict] = {}
        # Where the pages are served (hosted invoices, the portal): the emulator's public URL.
        self.public_url = ""
        self.on_event: Callable[[dict], None] | None = None
        self.account = _account()

    # -- objects --------------------------------------------------------------------

    def add(self, obj: dict) -> dict:
        self.objects[obj["object"]][obj["id"]] = obj
        return obj

    def get(self, kind: str, object_id: str) -> dict | None:
        return self.objects[kind].get(object_id)

    def require(self, kind: str, object_id: str, *, param: str = "id", status: int = 404) -> dict:
        """The object, or Stripe's `No such <kind>` error (400 when it names a parameter of a request)."""
        obj = self.objects[kind].get(object_id)
        if obj is None:
            raise no_such(ERROR_NAMES.get(kind, kind), object_id, param=param, status=status)
        return obj

    def find(self, object_id: str) -> dict | None:
        kind = type_of_id(object_id)
        return self.objects[kind].get(object_id) if kind else None

    def remove(self, kind: str, object_id: str) -> None:
        self.objects[kind].pop(object_id, None)

    def newest_first(self, kind: str) -> list[dict]:
        return list(reversed(self.objects[kind].values()))

    # -- events --------------------------------------------------------------------------

    def emit(
        self,
        event_type: str,
        obj: dict,
        previous: dict | None = None,
        *,
        request: dict | None = None,
    ) -> dict:
        """Record the Event Stripe would send for a change, and hand it to delivery."""
        data: dict = {"object": copy.deepcopy(obj)}
        if previous:
            data["previous_attributes"] = copy.deepcopy(previous)
        event = {
            "id": new_id("event"),
            "object": "event",
            "api_version": API_VERSION,
            "created": now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": request or {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        self.add(event)
        if self.on_event:
            self.on_event(event)
        return event

    # -- persistence ----------------------------------------------------------------------

    def save(self, path: Path) -> None:
        with self.lock:
            snapshot = {"objects": self.objects, **{name: getattr(self, name) for name in SIDE_TABLES}}
            path.write_text(json.dumps(snapshot))

    def load(self, path: Path) -> None:
        snapshot = json.loads(path.read_text())
        with self.lock:
            for kind, items in snapshot["objects"].items():
                self.objects.setdefault(kind, {}).update(items)
            for name in SIDE_TABLES:
                getattr(self, name).update(snapshot.get(name, {}))

    def reset(self) -> None:
        with self.lock:
            for items in self.objects.values():
                items.clear()
            for name in SIDE_TABLES:
                getattr(self, name).clear()


def _account() -> dict:
    return {
        "id": "acct_1EmulatorLocal000",
        "object": "account",
        "business_profile": {
            "annual_revenue": None,
            "estimated_worker_count": None,
            "mcc": None,
            "minority_owned_business_designation": None,
            "name": "Local Stripe emulator",
            "product_description": None,
            "support_address": None,
            "support_email": None,
            "support_phone": None,
            "support_url": None,
            "url": None,
        },
        "business_type": None,
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "controller": {"type": "account"},
        "country": "US",
        "created": 1700000000,
        "default_currency": "usd",
        "details_submitted": True,
        "email": "emulator@example.com",
        "external_accounts": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": "/v1/accounts/acct_1EmulatorLocal000/external_accounts",
        },
        "future_requirements": _no_requirements(),
        "metadata": {},
        "payouts_enabled": True,
        "requirements": _no_requirements(),
        "settings": {
            "bacs_debit_payments": {"display_name": None, "service_user_number": None},
            "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
            "card_issuing": {"tos_acceptance": {"date": None, "ip": None}},
            "card_payments": {
                "decline_on": {"avs_failure": False, "cvc_failure": False},
                "statement_descriptor_prefix": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "dashboard": {"display_name": "Local Stripe emulator", "timezone": "Etc/UTC"},
            "invoices": {"default_account_tax_ids": None, "hosted_payment_method_save": "offer"},
            "payments": {
                "statement_descriptor": "EMULATOR",
                "statement_descriptor_kana": None,
                "statement_descriptor_kanji": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "payouts": {
                "debit_negative_balances": True,
                "schedule": {"delay_days": 2, "interval": "daily"},
                "statement_descriptor": None,
            },
            "sepa_debit_payments": {},
        },
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
        "type": "standard",
    }


def _no_requirements() -> dict:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": [],
        "disabled_reason": None,
        "errors": [],
        "eventually_due": [],
        "past_due": [],
        "pending_verification": [],
    }
