"""The test suite: the machine's PostgreSQL and Redis, never SQLite or an in-memory broker."""

import hashlib
import tempfile

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import BASE_DIR, SIMPLE_JWT, env

DEBUG = False
SETTINGS_ROLE = "test"
SECRET_KEY = "test-only-secret-key-long-enough-for-hs256-signing"  # noqa: S105
JWT_SIGNING_KEY = "test-only-jwt-signing-key-not-the-secret-key-either"
SIMPLE_JWT = {**SIMPLE_JWT, "SIGNING_KEY": JWT_SIGNING_KEY}
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
# The shop front the tests' customers come from and return to.
CHECKOUT_REDIRECT_HOSTS = ["shop.example"]

DATABASES = {"default": env.db_url("DATABASE_URL", default="postgres:///postgres")}
# The test process opens a connection per test; the workers it starts keep theirs as production's do.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The processes a test starts behind PgBouncer (tests/journeys/test_pgbouncer.py) are told so, as production's are.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.bool("DATABASE_TRANSACTION_POOLING", default=False)


def _migrations_fingerprint() -> str:
    """A hash of every migration the schema is built from.

    The test database is kept between runs (dj-stripe's migrations alone cost
    about a minute), and named after this hash, so a changed migration or
    dj-stripe version gets a fresh database instead of a stale schema.
    """
    digest = hashlib.sha256()
    for path in sorted(BASE_DIR.glob("apps/*/migrations/*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update((BASE_DIR / "requirements.txt").read_bytes())
    return digest.hexdigest()[:10]


MIGRATIONS_FINGERPRINT = _migrations_fingerprint()
DATABASES["default"]["TEST"] = {"NAME": f"test_commerce_{MIGRATIONS_FINGERPRINT}"}

# Each pytest-xdist worker (PYTEST_XDIST_WORKER=gw0, gw1, ...) runs its own Celery workers against a broker, a
# cache and a coordination store of its own; without xdist the suite is gw0. Redis has 16 databases: these
# four triples leave 0 to 3 to the two-minute soak (tests/journeys/test_soak.py) and to whatever else runs beside.
REDIS_DATABASES_BY_TEST_WORKER = ((13, 14, 15), (10, 11, 12), (7, 8, 9), (4, 5, 6))  # coordination, cache, broker
TEST_WORKER_INDEX = int(env.str("PYTEST_XDIST_WORKER", default="gw0").removeprefix("gw"))
if TEST_WORKER_INDEX not in range(len(REDIS_DATABASES_BY_TEST_WORKER)):
    raise ImproperlyConfigured(f"at most {len(REDIS_DATABASES_BY_TEST_WORKER)} test workers (pytest -n) share a Redis")
_coordination_db, _cache_db, _broker_db = REDIS_DATABASES_BY_TEST_WORKER[TEST_WORKER_INDEX]

REDIS_TEST_URL = env.str("REDIS_TEST_URL", default=f"redis://127.0.0.1:6379/{_cache_db}")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_TEST_URL,
        "KEY_PREFIX": "test",
    }
}
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=f"redis://127.0.0.1:6379/{_broker_db}")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
COORDINATION_REDIS_URL = env.str("COORDINATION_REDIS_URL", default=f"redis://127.0.0.1:6379/{_coordination_db}")
# Fixed, because each test empties the database the generated one would live in.
STRIPE_APP_NAMESPACE = env.str("STRIPE_APP_NAMESPACE", default="testsuite")

# Hashing cost is not what the tests are about.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Mail stays in memory unless a test points a worker at a real SMTP server through EMAIL_URL.
if not env.str("EMAIL_URL", default=""):
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Each run counts into a directory of its own (its worker is given the same one), never into an earlier run's.
METRICS_DIR = env.str("METRICS_DIR", default="") or tempfile.mkdtemp(prefix="commerce-test-metrics-")
