"""Reads about plans: subscriptions and invoices as dj-stripe stores them, and who may use what.

`user_has_active_plan(user, product)` is the helper other apps call (or `permissions.plan_required` on a
DRF view); the rest serves the subscriptions API, `/users/me` and mail.
"""

from django.db.models import QuerySet
from djstripe import models as djstripe_models

from apps.catalog.models import Product
from apps.payments.orders import subscriptions

catalog_refs = subscriptions.catalog_refs


def subscription_list(*, user, everyone: bool = False) -> QuerySet:
    """dj-stripe's subscriptions with their customer: all for `everyone`, else those of the user's customer."""
    found = djstripe_models.Subscription.objects.select_related("customer").order_by("-created", "-djstripe_id")
    if everyone:
        return found
    return found.filter(customer__subscriber=user) if user is not None else found.none()


def user_has_active_plan(user, product: Product) -> bool:
    """Whether the user may use what `product` sells now: a subscription to one of its plans that is
    trialing, active, or past due while Stripe retries the card. Use it from any app (or `plan_required`)."""
    return subscriptions.live_subscription_of(user, product) is not None


def active_plans(user) -> list[dict]:
    """The plans the user has access to now, for `/users/me`."""
    subs = list(subscription_list(user=user).filter(stripe_data__status__in=list(subscriptions.ACCESS_STATUSES)))
    items = [(sub, item) for sub in subs for item in sub.stripe_data["items"]["data"]]
    refs = subscriptions.catalog_refs(
        {item["price"]["product"] for _, item in items} | {item["price"]["id"] for _, item in items}
    )
    return [
        {
            "product": refs.products.get(item["price"]["product"]),
            "product_name": refs.product_names.get(refs.products.get(item["price"]["product"]), ""),
            "price": refs.prices.get(item["price"]["id"]),
            "subscription": sub.id,
            "status": sub.stripe_data["status"],
            "current_period_end": item.get("current_period_end"),
            "cancel_at_period_end": bool(sub.stripe_data.get("cancel_at_period_end")),
        }
        for sub, item in items
    ]


def invoices_by_id(invoice_ids: list[str]) -> dict[str, dict]:
    """Stored invoices (as Stripe told them) by id."""
    rows = djstripe_models.Invoice.objects.filter(id__in=invoice_ids).values_list("id", "stripe_data")
    return dict(rows)


def stripe_product_id_of(*, product_id: int) -> str | None:
    return subscriptions.stripe_product_id(product_id)
