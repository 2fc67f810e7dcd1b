"""The project's URLs and one view that fails, for the error-reporting test's own process."""

from django.conf import settings
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as project_urlpatterns


def fail(request):
    # What a frame in the Stripe gateway holds when a call fails: the secret key in its headers, a customer.
    headers = {"Authorization": f"Bearer {settings.STRIPE_SECRET_KEY}"}
    customer = request.POST.get("email", "")
    raise RuntimeError(f"the failure Sentry must hear of ({len(headers)} header, customer {customer})")


urlpatterns = [path("fail/", csrf_exempt(fail)), *project_urlpatterns]
