"""The admin as operators meet it: the shop's name on top, what they work with first, Stripe's records last.

Django sorts apps and models alphabetically, which put some 50 dj-stripe models a shop never touches above
its orders. Here the order is the operator's: sales, the catalog, the mirror and the events that keep Stripe in step,
mail, people; dj-stripe's few models the project uses come last, read-only (see `apps.payments.gateway.admin`).
"""

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.urls import path

# Apps in the order an operator reaches for them; any app not named follows, alphabetically.
APP_ORDER = ("payments", "catalog", "mail", "users", "auth", "djstripe", "token_blacklist")
# dj-stripe's rows are Stripe's objects as its events told them; its app label says nothing to an operator.
APP_NAMES = {"djstripe": "Stripe (as its events told us)"}
# Within an app, models in this order (by object name); the rest follow alphabetically.
MODEL_ORDER = (
    "Order",
    "Payment",
    "SubscriptionCheckout",
    "MirrorRecord",
    "WebhookEvent",
    "BooksCheck",
    "ReconcileRun",
    "Product",
    "Price",
    "OutgoingMessage",
    "User",
    "Subscription",
    "Invoice",
    "Customer",
    "Event",
)


def _rank(order: tuple[str, ...], name: str) -> tuple[int, str]:
    return (order.index(name) if name in order else len(order), name.lower())


class ShopAdminSite(admin.AdminSite):
    site_url = None  # the site is an API; "View site" would lead to a 404

    @property
    def site_header(self) -> str:
        return f"{settings.SITE_NAME} operations"

    @property
    def site_title(self) -> str:
        return f"{settings.SITE_NAME} admin"

    index_title = "What needs doing"
    index_template = "admin/operations/index.html"

    def get_app_list(self, request, app_label=None):
        apps = sorted(
            self._build_app_dict(request, app_label).values(), key=lambda app: _rank(APP_ORDER, app["app_label"])
        )
        for app in apps:
            app["name"] = APP_NAMES.get(app["app_label"], app["name"])
            app["models"].sort(key=lambda model: _rank(MODEL_ORDER, model["object_name"]))
        return apps

    def get_urls(self):
        from apps.operations.dashboard import dashboard_view

        return [path("dashboard/", self.admin_view(dashboard_view), name="dashboard"), *super().get_urls()]

    def each_context(self, request):
        from apps.operations.dashboard import may_view_dashboard

        return {**super().each_context(request), "dashboard_allowed": may_view_dashboard(request.user)}


class ShopAdminConfig(AdminConfig):
    default_site = "config.admin_site.ShopAdminSite"
