"""dj-stripe's own admin, as this shop needs it: only the few models it stores rows in, read-only, and
dj-stripe's actions that call Stripe kept for superusers (billing registers its own admin of subscriptions and
invoices)."""

from functools import wraps

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from djstripe import models as djstripe_models
from djstripe.admin.actions import CustomActionMixin

DJSTRIPE_STRIPE_ACTIONS = ("_resync_instances", "_sync_all_instances", "_cancel")


def _superusers_only(view):
    @wraps(view)
    def gated(request, *args, **kwargs):
        if not request.user.is_superuser:
            raise PermissionDenied("dj-stripe's Stripe actions are for superusers.")
        return view(request, *args, **kwargs)

    return gated


def _gate_djstripe_actions(model_admin: admin.ModelAdmin) -> None:
    """dj-stripe's actions (re-sync, sync everything, cancel a subscription) call Stripe through a confirm
    view that checks no permission at all: any staff member could cancel a customer's subscription. They
    stay for superusers; everyone else neither sees them nor reaches the view."""
    all_actions, all_urls = model_admin.get_actions, model_admin.get_urls

    def get_actions(request):
        found = all_actions(request)
        if not request.user.is_superuser:
            for name in DJSTRIPE_STRIPE_ACTIONS:
                found.pop(name, None)
        return found

    def get_urls():
        patterns = all_urls()
        for pattern in patterns:
            if getattr(pattern, "name", None) == "djstripe_custom_action":
                pattern.callback = _superusers_only(pattern.callback)
        return patterns

    model_admin.get_actions, model_admin.get_urls = get_actions, get_urls


# dj-stripe registers an admin for each of its ~40 models; the shop stores rows in these few. The others
# (application fees, bank accounts, payouts ...) only crowd the sidebar, so they leave it.
DJSTRIPE_MODELS_IN_USE = (
    djstripe_models.Customer,
    djstripe_models.Event,
    djstripe_models.Invoice,
    djstripe_models.Price,
    djstripe_models.Product,
    djstripe_models.Subscription,
)


def _never(*args, **kwargs) -> bool:
    return False


for _model in [model for model in admin.site._registry if model._meta.app_label == "djstripe"]:
    if _model not in DJSTRIPE_MODELS_IN_USE:
        admin.site.unregister(_model)
        continue
    _model_admin = admin.site._registry[_model]
    # Stripe's word, as its events told it: read here; changed in Stripe, whose events come back.
    _model_admin.has_add_permission = _model_admin.has_change_permission = _never
    _model_admin.has_delete_permission = _never
    if isinstance(_model_admin, CustomActionMixin):
        _gate_djstripe_actions(_model_admin)
