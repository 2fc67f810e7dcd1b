from django.urls import path

from apps.payments.webhooks.ingest import stripe_webhook

# Mounted at the root as /stripe/webhook/ (the address Stripe is given).
urlpatterns = [path("webhook/", stripe_webhook, name="stripe-webhook")]
