"""The selectors of plans: subscriptions and invoices as dj-stripe stores them, and who may use what.

They are kept apart from `selectors` because that module is read by operations and the health check, which
must not import Stripe's libraries (the import contract "only payments talks to Stripe"); these reads need
dj-stripe's models. Like `selectors`, this module only reads. `user_has_active_plan(user, product)` is the
helper other apps call (or `permissions.plan_required` on a DRF view); the rest serves the subscriptions API,
`/users/me`, the stats and mail.
"""

from datetime import date

from django.db.models import Count, QuerySet
from django.db.models.fields.json import KeyTextTransform
from djstripe import models as djstripe_models

from apps.catalog.models import Product
from apps.payments.orders import subscriptions
from apps.payments.orders.subscriptions import CatalogRefs
from config.days import day_end, day_start


def catalog_refs(stripe_ids: set[str]) -> CatalogRefs:
    """The catalog's products and prices (ids and names) these Stripe ids mirror."""
    return subscriptions.catalog_refs(stripe_ids)


def subscription_list(*, user, everyone: bool = False) -> QuerySet:
    """dj-stripe's subscriptions with their customer: all for `everyone`, else those of the user's customer."""
    if everyone:
        found = djstripe_models.Subscription.objects.all()
    else:
        found = (
            subscriptions.subscriptions_of(user) if user is not None else djstripe_models.Subscription.objects.none()
        )
    return found.select_related("customer").order_by("-created", "-djstripe_id")


def subscriptions_of_email(subs: QuerySet, *, email: str) -> QuerySet:
    """Of `subs`, those whose Stripe customer has this address (in any case)."""
    return subs.filter(customer__stripe_data__email__iexact=email)


def subscriptions_of_product(subs: QuerySet, *, product_id: int) -> QuerySet:
    """Of `subs`, those with a plan of this catalog product (none if the product never reached Stripe)."""
    stripe_id = subscriptions.stripe_product_id(product_id)
    return subs.filter(items__price__product__id=stripe_id).distinct() if stripe_id else subs.none()


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


# A month of each billing interval: what one period of a plan is worth per month (MRR).
MONTHS_PER_INTERVAL = {"day": 12 / 365, "week": 12 / 52, "month": 1, "year": 12}
PAYING_STATUSES = ("active", "past_due")


def monthly_amount(item: dict) -> float:
    recurring = item["price"]["recurring"]
    months = MONTHS_PER_INTERVAL[recurring["interval"]] * recurring["interval_count"]
    return item["price"]["unit_amount"] * item["quantity"] / months


def subscription_stats(*, date_from: date, date_to: date) -> dict:
    """What an operator asks of the plans: how many in each status now, the monthly recurring revenue per
    currency (active and past-due plans, each period's price spread over months), and how many started and
    ended (churn) in the date range."""
    subs = djstripe_models.Subscription.objects.all()
    by_status = dict(
        subs.annotate(status=KeyTextTransform("status", "stripe_data"))
        .values("status")
        .annotate(count=Count("djstripe_id"))
        .values_list("status", "count")
    )
    mrr: dict[str, float] = {}
    for data in subs.filter(stripe_data__status__in=list(PAYING_STATUSES)).values_list("stripe_data", flat=True):
        for item in data["items"]["data"]:
            mrr[data["currency"]] = mrr.get(data["currency"], 0) + monthly_amount(item)
    start = int(day_start(date_from).timestamp())
    end = int((day_end(date_to) or day_start(date_to)).timestamp())
    return {
        "by_status": [{"status": status, "count": count} for status, count in sorted(by_status.items())],
        "active": by_status.get("active", 0),
        "trialing": by_status.get("trialing", 0),
        "past_due": by_status.get("past_due", 0),
        "mrr": [{"currency": currency, "amount": round(amount)} for currency, amount in sorted(mrr.items())],
        "started": subs.filter(stripe_data__start_date__gte=start, stripe_data__start_date__lt=end).count(),
        "churned": subs.filter(stripe_data__ended_at__gte=start, stripe_data__ended_at__lt=end).count(),
    }
