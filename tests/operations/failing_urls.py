"""The project's URLs and one view that fails, for the error-reporting test's own process."""

from django.urls import path

from config.urls import urlpatterns as project_urlpatterns


def fail(request):
    raise RuntimeError("the failure Sentry must hear of")


urlpatterns = [path("fail/", fail), *project_urlpatterns]
