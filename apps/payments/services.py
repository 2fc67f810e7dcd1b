"""What payments does when asked: every operation the API, the serializers, the admin and the commands call,
in one list (their reads are in `selectors`, and those of plans in `plans`).

The work itself lives in the rooms (`orders/`, `mirror/`, `webhooks/`, and `gateway/`, the one door to
Stripe); this module is the app's front desk, so a caller outside payments reads one module to see what
it may ask. The rooms never import it.
"""

from apps.payments.mirror.outbox import enqueue as mirror_enqueue
from apps.payments.mirror.outbox import mirror_again, mirror_record_change
from apps.payments.mirror.outcomes import SyncOutcome
from apps.payments.mirror.reconcile import Drift, ReconcileBusy, reconcile
from apps.payments.mirror.sync import mirror_sync
from apps.payments.orders.books import books_check
from apps.payments.orders.checkout import checkout_for_cart, payment_link_create
from apps.payments.orders.idempotency import Answer, idempotent
from apps.payments.orders.intents import client_secret_of, intent_for_cart
from apps.payments.orders.lifecycle import CartLine, order_accept_payment, order_create, order_transition
from apps.payments.orders.refunds import order_apply_refund, order_refund
from apps.payments.orders.sessions import order_cancel, order_sync
from apps.payments.orders.subscriptions import (
    PRORATIONS,
    billing_portal_url,
    subscription_cancel,
    subscription_change_plan,
    subscription_checkout_for_cart,
    subscription_resume,
)
from apps.payments.webhooks.drain import replay as webhook_event_replay
from apps.payments.webhooks.processing import process_event as webhook_event_process
from apps.payments.webhooks.retention import PruneRefused as WebhookPruneRefused
from apps.payments.webhooks.retention import default_cutoff as webhook_retention_cutoff
from apps.payments.webhooks.retention import prunable as webhook_events_prunable
from apps.payments.webhooks.retention import prune as webhook_events_prune

__all__ = [
    "PRORATIONS",
    "Answer",
    "CartLine",
    "Drift",
    "ReconcileBusy",
    "SyncOutcome",
    "WebhookPruneRefused",
    "billing_portal_url",
    "books_check",
    "checkout_for_cart",
    "client_secret_of",
    "idempotent",
    "intent_for_cart",
    "mirror_again",
    "mirror_enqueue",
    "mirror_record_change",
    "mirror_sync",
    "order_accept_payment",
    "order_apply_refund",
    "order_cancel",
    "order_create",
    "order_refund",
    "order_sync",
    "order_transition",
    "payment_link_create",
    "reconcile",
    "subscription_cancel",
    "subscription_change_plan",
    "subscription_checkout_for_cart",
    "subscription_resume",
    "webhook_event_process",
    "webhook_event_replay",
    "webhook_events_prunable",
    "webhook_events_prune",
    "webhook_retention_cutoff",
]
