from django.urls import re_path

from apps.payments.billing import api
from config.api_conventions import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("subscriptions", api.SubscriptionViewSet, basename="subscription")

# A trailing slash is optional, like everywhere in the API.
urlpatterns = [
    re_path(r"^checkout/sessions/?$", api.CheckoutSessionApi.as_view(), name="checkout-sessions"),
    re_path(r"^payments/stats/?$", api.PaymentStatsApi.as_view(), name="payment-stats"),
    re_path(r"^billing-portal/?$", api.BillingPortalApi.as_view(), name="billing-portal"),
    *router.urls,
]
