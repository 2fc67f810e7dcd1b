"""Payments' API, each slice's own routes (`/stripe/webhook/` is mounted apart: `webhooks.urls`)."""

from django.urls import include, path

urlpatterns = [
    path("", include("apps.payments.mirror.urls")),
    path("", include("apps.payments.billing.urls")),
    path("", include("apps.payments.orders.urls")),
]
