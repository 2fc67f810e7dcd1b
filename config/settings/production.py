"""Production: everything from the environment, nothing insecure by default.

What cannot be checked here (Stripe's keys and address, the webhook secrets) is checked by
`manage.py check --deploy` as errors, and `config.wsgi` / `config.celery` refuse to start on any of them.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import BEHIND_PROXY, JWT_SIGNING_KEY, SECRET_KEY, SIMPLE_JWT, env

MIN_SECRET_KEY_LENGTH = 50
ONE_YEAR = 365 * 24 * 3600


def _require_real_secret(name: str, key: str) -> str:
    """Refuse to start with a missing, short or development key."""
    if not key:
        raise ImproperlyConfigured(f"{name} must be set in production.")
    if len(key) < MIN_SECRET_KEY_LENGTH or len(set(key)) < 5 or key.startswith(("django-insecure", "dev-")):
        raise ImproperlyConfigured(
            f"{name} is too weak for production: use at least {MIN_SECRET_KEY_LENGTH} random characters, "
            "e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )
    return key


DEBUG = False
REFUSE_UNSAFE_START = True
SETTINGS_ROLE = "production"
SECRET_KEY = _require_real_secret("DJANGO_SECRET_KEY", SECRET_KEY)
JWT_SIGNING_KEY = _require_real_secret("JWT_SIGNING_KEY", JWT_SIGNING_KEY)
if JWT_SIGNING_KEY == SECRET_KEY:
    raise ImproperlyConfigured("JWT_SIGNING_KEY must differ from DJANGO_SECRET_KEY.")
SIMPLE_JWT = {**SIMPLE_JWT, "SIGNING_KEY": JWT_SIGNING_KEY}

# Believed only from a proxy that sets it (DJANGO_BEHIND_PROXY): otherwise any client could claim https.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
#: production sends plain HTTP requests to https (except `/health/` and `/health/live`)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# /health/ and /health/live are probed over plain HTTP by load balancers and orchestrators.
SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^health/live$"]
# Several processes (gunicorn workers, Celery) share counters only through a directory the deployment gives
# (compose does); none is made inside the code's own directory.
METRICS_DIR = env.str("METRICS_DIR", default="")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
#: seconds browsers are told to use only https for the site (HSTS)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=ONE_YEAR)
#: HSTS covers the site's subdomains too
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
#: ask browsers to preload HSTS for the domain (a promise its owner makes at hstspreload.org)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
# Preloading is a promise the domain's owner makes at hstspreload.org, not a default: without it, the
# check that suggests it (security.W021) is answered here rather than left as noise in `check --deploy`.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
