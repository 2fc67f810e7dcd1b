from django.urls import re_path

from apps.payments.orders import api
from config.api_conventions import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("orders", api.OrderViewSet, basename="order")
router.register("payments", api.PaymentViewSet, basename="payment")

# A trailing slash is optional, like everywhere in the API.
urlpatterns = [
    re_path(r"^payment-links/?$", api.PaymentLinkApi.as_view(), name="payment-links"),
    re_path(r"^payment-intents/?$", api.PaymentIntentApi.as_view(), name="payment-intents"),
    re_path(r"^payments/verify-prices/?$", api.VerifyPricesApi.as_view(), name="verify-prices"),
    *router.urls,
]
