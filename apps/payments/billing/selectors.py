"""Reads of billing: subscriptions and invoices as dj-stripe stores them, who may use what, and what a message
about a subscription tells its user.

These reads need dj-stripe's models, so operations and the health check (which the contract "only payments
talks to Stripe" keeps free of Stripe's libraries) do not import this module. `user_has_active_plan(user,
product)` is the helper other apps call (or `permissions.plan_required` on a DRF view); the rest serves the
subscriptions API, `/users/me`, the stats and mail.
"""

from dataclasses import dataclass
from datetime import date

from django.db.models import Count, QuerySet
from django.db.models.fields.json import KeyTextTransform
from djstripe import models as djstripe_models

from apps.catalog.models import Product
from apps.payments.billing.models import ACCESS_STATUSES
from apps.payments.mirror.models import MirrorKind
from apps.payments.mirror.refs import catalog_refs, stripe_id_of
from apps.users.models import User
from config.days import day_end, day_start


def subscriptions_of(user: User):
    """The user's subscriptions: those billing their mirrored customer."""
    return djstripe_models.Subscription.objects.filter(customer__subscriber=user)


def live_subscription_of(user: User, product, statuses=ACCESS_STATUSES) -> djstripe_models.Subscription | None:
    """The user's subscription to a plan of this product that is in one of `statuses`, if any."""
    stripe_id = stripe_id_of(MirrorKind.PRODUCT, product.pk)
    if not stripe_id or not getattr(user, "pk", None):
        return None
    return (
        subscriptions_of(user)
        .filter(stripe_data__status__in=list(statuses), items__price__product__id=stripe_id)
        .order_by("-created")
        .first()
    )


@dataclass(frozen=True)
class SubscriptionNews:
    """What a message about a subscription (or one of its invoices) tells its user."""

    subscription_id: str
    user: object
    plan_names: list[str]
    status: str
    currency: str
    amount: int
    current_period_end: int | None
    trial_end: int | None
    invoice_id: str = ""
    invoice_number: str = ""
    invoice_url: str = ""
    # Where the customer saves another card (the portal's login page), for a payment that failed.
    portal_url: str = ""
    # The bank asks the customer to confirm the payment (3D Secure): nothing is wrong with the card.
    action_required: bool = False


def subscription_news(*, subscription_id: str, invoice_id: str = "") -> SubscriptionNews | None:
    """A subscription's (and an invoice's) state for mail; None unless one of our users holds it."""
    found = djstripe_models.Subscription.objects.select_related("customer__subscriber")
    sub = found.filter(id=subscription_id).first()
    if sub is None or sub.customer.subscriber is None:
        return None
    data = sub.stripe_data
    items = data["items"]["data"]
    refs = catalog_refs({item["price"]["product"] for item in items})
    invoice = djstripe_models.Invoice.objects.filter(id=invoice_id).first() if invoice_id else None
    invoice_data = invoice.stripe_data if invoice else {}
    return SubscriptionNews(
        subscription_id=sub.id,
        user=sub.customer.subscriber,
        plan_names=[
            refs.product_names.get(refs.products.get(item["price"]["product"]), item["price"]["product"])
            for item in items
        ],
        status=data["status"],
        currency=data["currency"],
        amount=invoice_data.get("amount_due") or sum(item["price"]["unit_amount"] * item["quantity"] for item in items),
        current_period_end=items[0].get("current_period_end") if items else None,
        trial_end=data.get("trial_end"),
        invoice_id=invoice_id,
        invoice_number=invoice_data.get("number") or "",
        invoice_url=invoice_data.get("hosted_invoice_url") or "",
    )


def subscription_list(*, user, everyone: bool = False) -> QuerySet:
    """dj-stripe's subscriptions with their customer: all for `everyone`, else those of the user's customer."""
    if everyone:
        found = djstripe_models.Subscription.objects.all()
    else:
        found = subscriptions_of(user) if user is not None else djstripe_models.Subscription.objects.none()
    return found.select_related("customer").order_by("-created", "-djstripe_id")


def subscriptions_of_email(subs: QuerySet, *, email: str) -> QuerySet:
    """Of `subs`, those whose Stripe customer has this address (in any case)."""
    return subs.filter(customer__stripe_data__email__iexact=email)


def subscriptions_of_product(subs: QuerySet, *, product_id: int) -> QuerySet:
    """Of `subs`, those with a plan of this catalog product (none if the product never reached Stripe)."""
    stripe_id = stripe_id_of(MirrorKind.PRODUCT, product_id)
    return subs.filter(items__price__product__id=stripe_id).distinct() if stripe_id else subs.none()


def user_has_active_plan(user, product: Product) -> bool:
    """Whether the user may use what `product` sells now: a subscription to one of its plans that is
    trialing, active, or past due while Stripe retries the card. Use it from any app (or `plan_required`)."""
    return live_subscription_of(user, product) is not None


def active_plans(user) -> list[dict]:
    """The plans the user has access to now, for `/users/me`."""
    subs = list(subscription_list(user=user).filter(stripe_data__status__in=list(ACCESS_STATUSES)))
    items = [(sub, item) for sub in subs for item in sub.stripe_data["items"]["data"]]
    refs = catalog_refs({item["price"]["product"] for _, item in items} | {item["price"]["id"] for _, item in items})
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
