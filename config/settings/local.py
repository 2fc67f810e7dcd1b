"""Development: `make run`. Safe defaults so a fresh machine needs no configuration."""

from .base import *  # noqa: F403
from .base import SIMPLE_JWT, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SETTINGS_ROLE = "development"
# Only good on a developer's machine; production.py refuses to start without real keys.
# An empty variable (docker-compose passes one through) counts as unset.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or "dev-only-insecure-key-never-use-in-production"
JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default="") or "dev-only-insecure-jwt-key-never-use-in-production"
SIMPLE_JWT = {**SIMPLE_JWT, "SIGNING_KEY": JWT_SIGNING_KEY}
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
