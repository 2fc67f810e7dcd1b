"""Development: `make run`. Safe defaults so a fresh machine needs no configuration."""

from urllib.parse import urlsplit

from .base import *  # noqa: F403
from .base import BROKER_DIR, CELERY_BROKER_URL, SIMPLE_JWT, SITE_URL, VAR_DIR, env

# Development's defaults keep their state under var/ (the SQLite file, the broker's messages, the beat's
# schedule): made here, so a fresh checkout runs, and only here (production and the tests create nothing).
VAR_DIR.mkdir(exist_ok=True)
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _folder in ("queue", "processed", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SETTINGS_ROLE = "development"
# Only good on a developer's machine; production.py refuses to start without real keys.
# An empty variable (docker-compose passes one through) counts as unset.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or "dev-only-insecure-key-never-use-in-production"
JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default="") or "dev-only-insecure-jwt-key-never-use-in-production"
SIMPLE_JWT = {**SIMPLE_JWT, "SIGNING_KEY": JWT_SIGNING_KEY}
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
# A developer opens the shop as http://localhost:8000 or http://127.0.0.1:8000: checkout may send the payer back
# to either, and to SITE_URL's host, not only to the one SITE_URL names.
CHECKOUT_REDIRECT_HOSTS = env.list("CHECKOUT_REDIRECT_HOSTS", default=[]) or sorted(
    {urlsplit(SITE_URL).hostname or "localhost", "localhost", "127.0.0.1"}
)
