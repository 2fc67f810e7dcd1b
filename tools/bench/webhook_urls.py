"""The app's URLs plus dj-stripe's stock webhook view, for `make bench-webhooks` only (never routed in production)."""

from django.urls import include, path

from config.urls import urlpatterns as app_urlpatterns

urlpatterns = [*app_urlpatterns, path("djstripe/", include("djstripe.urls", namespace="djstripe"))]
