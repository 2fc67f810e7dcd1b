from django.urls import re_path

from apps.payments import api
from config.api_conventions import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("payments/mirror", api.MirrorRecordViewSet, basename="mirror-record")
router.register("orders", api.OrderViewSet, basename="order")
router.register("payments", api.PaymentViewSet, basename="payment")
router.register("subscriptions", api.SubscriptionViewSet, basename="subscription")

# A trailing slash is optional, like everywhere in the API.
urlpatterns = [
    re_path(r"^checkout/sessions/?$", api.CheckoutSessionApi.as_view(), name="checkout-sessions"),
    re_path(r"^payment-links/?$", api.PaymentLinkApi.as_view(), name="payment-links"),
    re_path(r"^payment-intents/?$", api.PaymentIntentApi.as_view(), name="payment-intents"),
    re_path(r"^payments/verify-prices/?$", api.VerifyPricesApi.as_view(), name="verify-prices"),
    re_path(r"^payments/stats/?$", api.PaymentStatsApi.as_view(), name="payment-stats"),
    re_path(r"^billing-portal/?$", api.BillingPortalApi.as_view(), name="billing-portal"),
    *router.urls,
]
