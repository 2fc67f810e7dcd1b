from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.operations.metrics import metrics_view
from config.health import health, liveness

api_v1 = [
    path("", include("apps.users.urls")),
    path("", include("apps.catalog.urls")),
    path("", include("apps.payments.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/", health, name="health"),
    path("health/live", liveness, name="liveness"),
    path("metrics", metrics_view, name="metrics"),
    path("stripe/", include("apps.payments.webhooks.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/v1/", include(api_v1)),
]

handler404 = "config.api_conventions.api_not_found"
handler500 = "config.api_conventions.api_server_error"
