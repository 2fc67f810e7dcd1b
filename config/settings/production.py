"""Production: everything from the environment, nothing insecure by default."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import SECRET_KEY, env

MIN_SECRET_KEY_LENGTH = 50


def _require_real_secret_key(key: str) -> str:
    """Refuse to start with a missing, short or development secret key."""
    if not key:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production.")
    if len(key) < MIN_SECRET_KEY_LENGTH or len(set(key)) < 5 or key.startswith(("django-insecure", "dev-")):
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is too weak for production: use at least {MIN_SECRET_KEY_LENGTH} random characters, "
            "e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )
    return key


DEBUG = False
SECRET_KEY = _require_real_secret_key(SECRET_KEY)

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# /health/ is probed over plain HTTP by load balancers and orchestrators.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
