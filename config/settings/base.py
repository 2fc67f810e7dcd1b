"""Settings shared by every environment; every knob comes from the environment.

`local`, `test` and `production` start from here and change only what differs.
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A server's settings come from its environment, never from a file that happens to lie beside the code.
#: `true`: read a `.env` file beside `manage.py` first (a developer's overrides; a server never reads one)
if env.bool("DJANGO_READ_DOT_ENV_FILE", default=False):
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
# Another directory gives a second local stack (the docs' example test) state of its own.
#: where `make run`'s defaults keep their state: the SQLite file, the file broker, the cache, the beat's
#: schedule, the metrics files, the staff password
VAR_DIR = Path(env.str("DJANGO_VAR_DIR", default=str(BASE_DIR / "var")))

#: Django's debug pages (production is never in debug, whatever this says)
DEBUG = env.bool("DJANGO_DEBUG", default=False)
#: Django's secret key (sessions, password reset links); production refuses to start without a real one (50+
#: random characters)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
#: the host names the site answers to, comma-separated
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
#: origins trusted for the admin's forms behind https, e.g. `https://shop.example.com`
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
#: the web port (`make run` and the Procfile's `web` read it too)
PORT = env.int("PORT", default=8000)
# Without a proxy any client could write those headers.
#: a reverse proxy (nginx, a load balancer) in front sets `X-Forwarded-Proto` and `X-Forwarded-For`: believe
#: them, and only then
BEHIND_PROXY = env.bool("DJANGO_BEHIND_PROXY", default=False)
# Production (settings/production.py) turns every `check --deploy` error into a refusal to start.
REFUSE_UNSAFE_START = False
# Which settings these are: development settings with DEBUG off are a server run on the wrong settings.
SETTINGS_ROLE = "base"

INSTALLED_APPS = [
    "config.admin_site.ShopAdminConfig",  # django.contrib.admin, with the shop's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "djstripe",
    "apps.users",
    "apps.catalog",
    "apps.payments",
    "apps.mail",
    "apps.operations",
]

MIDDLEWARE = [
    "config.metrics.RequestMetricsMiddleware",
    "config.request_id.RequestIdMiddleware",
    "config.logs.LogContextMiddleware",
    # Stripe calls made while a request is served never wait (apps/payments/gateway/policies.py).
    "apps.payments.gateway.policies.WebRequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

#: the URL configuration module (a benchmark swaps in its own)
ROOT_URLCONF = env.str("DJANGO_ROOT_URLCONF", default="config.urls")
# Hot paths config.wsgi serves with a bare WSGI app, skipping the middleware (Stripe's webhook deliveries).
FAST_WSGI_PATHS = {"/stripe/webhook/": "apps.payments.webhooks.ingest.webhook_wsgi_app"}
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------

#: the database, e.g. `postgres://user:password@host:5432/name`
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL lets readers run beside a writer,
    # IMMEDIATE takes the write lock up front instead of failing on upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    #: seconds a process keeps a database connection open between requests or tasks (not with SQLite)
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    #: set when a pooler in transaction mode (PgBouncer's `pool_mode = transaction`) stands between the processes
    #: and PostgreSQL: no server-side cursor then, as nothing may outlive its transaction (docs/scaling.md)
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.bool("DATABASE_TRANSACTION_POOLING", default=False)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (throttling counters live here, so it is shared between processes) ---

# Without a server a file cache under var/ is what every local process can share.
#: the cache every process shares (rate-limit counters); `redis://...` when several machines serve
CACHES = {"default": env.cache_url("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}

# --- Auth -----------------------------------------------------------------------

AUTH_USER_MODEL = "users.User"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation ---------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- REST API -------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # The API speaks JSON only: no form or multipart parsing of bodies nobody should send (415 otherwise).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_PAGINATION_CLASS": "config.api_conventions.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "config.api_conventions.StrictSearchFilter",
        "config.api_conventions.StableOrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "config.api_schema.ApiSchema",
    "EXCEPTION_HANDLER": "config.api_conventions.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        # Per client address, each endpoint its own budget (apps/users/throttles.py says why).
        #: logins (API and admin) per client address
        "login": env.str("LOGIN_THROTTLE_RATE", default="30/minute"),
        #: registrations per client address
        "register": env.str("REGISTER_THROTTLE_RATE", default="20/hour"),
        #: token refreshes per client address
        "refresh": env.str("REFRESH_THROTTLE_RATE", default="60/minute"),
        #: logouts and email verification links per client address
        "auth": env.str("AUTH_THROTTLE_RATE", default="30/minute"),
        # Per account tried and client address, and per account whoever tries it.
        #: logins per account and client address (one client guessing one password)
        "login_email_address": env.str("LOGIN_EMAIL_ADDRESS_THROTTLE_RATE", default="5/minute"),
        #: logins per account from anywhere (many clients guessing together)
        "login_email": env.str("LOGIN_EMAIL_THROTTLE_RATE", default="20/minute"),
        # Per user, on every endpoint that spends the shared Stripe budget (checkout, links, cancel, refund, sync).
        #: checkout, payment links, cancel, refunds, mirror retries and `?sync=1`, per user
        "stripe_calls": env.str("STRIPE_CALLS_THROTTLE_RATE", default="30/minute"),
        #: the same, per client address (more accounts buy no more)
        "stripe_calls_address": env.str("STRIPE_CALLS_ADDRESS_THROTTLE_RATE", default="120/minute"),
        #: verification mails sent again, per user
        "verification_mail": env.str("VERIFICATION_MAIL_THROTTLE_RATE", default="5/hour"),
    },
    # Empty counts as unset: docker-compose passes unset variables through as empty strings.
    #: how many proxies append to `X-Forwarded-For`, exactly (one too many and a client picks its own address)
    "NUM_PROXIES": int(env.str("DJANGO_NUM_PROXIES", default="") or (1 if BEHIND_PROXY else 0)),
}
# Guessing an account's password from many addresses cannot lock the owner out.
#: days an address an account logged in from is spared that account's shared login limit (0: none is)
LOGIN_KNOWN_ADDRESS_DAYS = env.int("LOGIN_KNOWN_ADDRESS_DAYS", default=30)

# Tokens are signed with their own key, so a leaked SECRET_KEY (sessions, password reset) does not mint API
# tokens, and the JWT key can be rolled without logging out the admin.
#: signs API tokens; production requires one of its own (50+ characters, not `DJANGO_SECRET_KEY`)
JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default="")
SIMPLE_JWT = {
    "SIGNING_KEY": JWT_SIGNING_KEY,
    #: minutes an access token lives
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    #: days a refresh token lives (each refresh gives a new one)
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "AUTH_HEADER_TYPES": ("Bearer",),
    # Every token carries a hash of the password it was issued under: a changed password ends them all.
    "CHECK_REVOKE_TOKEN": True,
    "TOKEN_OBTAIN_SERIALIZER": "apps.users.serializers.TokenObtainInputSerializer",
    "TOKEN_REFRESH_SERIALIZER": "apps.users.serializers.TokenRefreshInputSerializer",
}
#: days after its login a session ends, however often it is refreshed
JWT_SESSION_MAX_DAYS = env.int("JWT_SESSION_MAX_DAYS", default=30)

SPECTACULAR_SETTINGS = {
    "TITLE": "Commerce API",
    "DESCRIPTION": "Users, catalog and payments, kept in step with Stripe.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from the sidecar package: the docs page works without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Fields of one name (`status`) with different choices each get their model's name in the schema.
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "apps.payments.orders.models.OrderStatus",
        "PaymentStatusEnum": "apps.payments.orders.models.PaymentStatus",
    },
}

# --- Celery ---------------------------------------------------------------------------

#: the Celery broker: `redis://...`, or `filesystem://`, a broker that needs no server (files under `var/`)
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(BROKER_DIR / "control"),
    }
else:
    # Task retry countdowns stay well below it so a retry is never mistaken for a loss.
    #: seconds after which Redis delivers an unacknowledged task again
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
#: seconds a task runs before it is asked to stop
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=60)
#: seconds a task runs before its process is killed
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=90)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker that is down must not hold a web request for long: the beat task re-sends what was not queued.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
# Celery's Django fixup closes the database connection around every task unless told how many tasks a
# connection may serve; `config/celery.py` closes it as Django would (CONN_MAX_AGE, health checks) instead.
CELERY_DB_REUSE_MAX = 10_000
CELERY_BEAT_SCHEDULE: dict = {}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# One queue per kind of work, so each can have workers of its own: a mail server that hangs fills `mail`, not
# the queue that carries a payment's event. Production runs a worker for payments (webhooks, mirror and the
# rest share it) and one for mail (docker-compose.yml); a deployment whose mirror backlog grows can give
# `mirror` its own worker too. `make run` has one worker consume them all.
# A worker started without `-Q` consumes every queue, so nothing waits on a queue no one reads.
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name) for name in ("webhooks", "mirror", "payments", "mail")
]
CELERY_TASK_DEFAULT_QUEUE = "payments"
CELERY_TASK_ROUTES = {
    "apps.payments.tasks.drain_webhook_events_task": {"queue": "webhooks"},
    "apps.payments.tasks.webhook_*": {"queue": "webhooks"},
    "apps.payments.tasks.mirror_*": {"queue": "mirror"},
    "apps.mail.tasks.*": {"queue": "mail"},
}

# --- Stripe (dj-stripe) -----------------------------------------------------------------

#: Stripe's secret key: `sk_test_...` or `sk_live_...` (a restricted `rk_` key works too)
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
# Secret and restricted keys alike; an event of the other mode is stored and refused.
STRIPE_LIVE_MODE = STRIPE_SECRET_KEY.startswith(("sk_live_", "rk_live_"))
# `make run` gives the emulator's (`pk_test_X` pairs with `sk_test_X` there); never derived here, since that
# would hand a secret key's characters to every app.
#: the publishable key apps (Stripe.js, the iOS and Android SDKs) pay a payment intent with; not a secret.
#: Without it `POST /api/v1/payment-intents` answers 503
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
#: this installation's name in a Stripe account others share, written beside every `metadata.app_ref`
#: (empty: generated once into the database)
STRIPE_APP_NAMESPACE = env.str("STRIPE_APP_NAMESPACE", default="")
#: Stripe's API address; empty means Stripe itself (`make run` gives its emulator's)
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="").strip().rstrip("/")
#: `true`: production accepts a test key (a staging site); otherwise `check --deploy` refuses one
STRIPE_TEST_MODE_ALLOWED = env.bool("STRIPE_TEST_MODE_ALLOWED", default=False)


def _webhook_secrets(raw: str) -> list[str]:
    """`whsec_a, whsec_b` -> both; an empty entry (`"whsec_a, "`) or one not in Stripe's form stops the start,
    because a blank secret would accept any event signed with a blank key."""
    if not raw.strip():
        return []
    entries = [entry.strip() for entry in raw.split(",")]
    for position, entry in enumerate(entries, start=1):
        if not entry:
            raise ImproperlyConfigured(f"STRIPE_WEBHOOK_SECRET: entry {position} is empty (a stray comma?).")
        if not entry.startswith("whsec_") or len(entry) < len("whsec_") + 16 or any(c.isspace() for c in entry):
            raise ImproperlyConfigured(
                f"STRIPE_WEBHOOK_SECRET: entry {position} is not a Stripe signing secret (whsec_ and 16+ characters)."
            )
    return entries


#: the signing secret of `/stripe/webhook/` (`whsec_...`); several, comma-separated, while one is rolled over
#: to the next (the first is current)
STRIPE_WEBHOOK_SECRETS = _webhook_secrets(env.str("STRIPE_WEBHOOK_SECRET", default=""))
STRIPE_WEBHOOK_SECRET = STRIPE_WEBHOOK_SECRETS[0] if STRIPE_WEBHOOK_SECRETS else ""
# Pinned to the version the installed `stripe` SDK is generated for, so the
# shapes dj-stripe stores never change under us when Stripe moves its default.
STRIPE_API_VERSION = "2026-08-26.dahlia"
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
# dj-stripe would link a synced customer to the user its `djstripe_subscriber` metadata names: anything that
# can write a customer's metadata could then hand a user someone else's subscriptions. The mirror links them.
DJSTRIPE_SUBSCRIBER_CUSTOMER_KEY = ""
DJSTRIPE_WEBHOOK_SECRET = STRIPE_WEBHOOK_SECRET

# --- The mirror (local users, products and prices -> Stripe) ------------------------------

#: mirror users, products and prices to Stripe at all (off without a key)
STRIPE_MIRROR_ENABLED = env.bool("STRIPE_MIRROR_ENABLED", default=bool(STRIPE_SECRET_KEY))
#: seconds a Stripe request may take
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=20.0)
#: retries inside one Stripe call (429, 409, 5xx, connection errors), before the task retries later
STRIPE_MAX_RETRIES = env.int("STRIPE_MAX_RETRIES", default=3)
# Below Stripe's own limits: 100/s live, 25/s test, 25/s per endpoint.
#: Stripe requests a second, all processes together (90 with a live key, 25 with a test key)
STRIPE_RATE_LIMIT_PER_SECOND = env.float("STRIPE_RATE_LIMIT_PER_SECOND", default=90.0 if STRIPE_LIVE_MODE else 25.0)
#: Stripe requests a second to one endpoint (`POST /v1/products`, ...), all processes together
STRIPE_RATE_LIMIT_PER_ENDPOINT = env.float("STRIPE_RATE_LIMIT_PER_ENDPOINT", default=20.0)
_COORDINATION_DEFAULT = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else ""
#: the earlier name of `COORDINATION_REDIS_URL`, still read
_COORDINATION_EARLIER_NAME = env.str("STRIPE_BUDGET_REDIS_URL", default=_COORDINATION_DEFAULT)
#: the Redis where web and worker processes coordinate: the Stripe rate budget, the circuit breaker, the webhook
#: drain slots. Empty (as in `make run`, which has no Redis) keeps each per process; the broker's when it is Redis
COORDINATION_REDIS_URL = env.str("COORDINATION_REDIS_URL", default=_COORDINATION_EARLIER_NAME)
#: failures within 30 s that open the circuit breaker (Stripe is not called while it is open)
STRIPE_CIRCUIT_FAILURES = env.int("STRIPE_CIRCUIT_FAILURES", default=10)
#: seconds the circuit stays open before Stripe is tried again
STRIPE_CIRCUIT_COOLDOWN_SECONDS = env.float("STRIPE_CIRCUIT_COOLDOWN_SECONDS", default=15.0)
#: seconds a change may stay pending before the beat queues it again
MIRROR_STALE_AFTER_SECONDS = env.int("MIRROR_STALE_AFTER_SECONDS", default=60)
#: seconds to wait before pushing a change, so edits this close together reach Stripe as one update
MIRROR_COALESCE_SECONDS = env.float("MIRROR_COALESCE_SECONDS", default=1.0)
#: longest wait between a mirror task's retries (keep it far below `CELERY_VISIBILITY_TIMEOUT`)
MIRROR_RETRY_MAX_SECONDS = env.int("MIRROR_RETRY_MAX_SECONDS", default=300)
#: retries of a mirror task before its row is marked `failed`
MIRROR_MAX_TASK_RETRIES = env.int("MIRROR_MAX_TASK_RETRIES", default=25)

# --- Webhooks (Stripe -> local) ------------------------------------------------------------

#: bytes a webhook body may have; a larger one is answered 413 before it is read (Stripe's are a few KiB)
STRIPE_WEBHOOK_MAX_BYTES = env.int("STRIPE_WEBHOOK_MAX_BYTES", default=256 * 1024)
#: seconds between a webhook signature's timestamp and now that are tolerated (Stripe's own tolerance)
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
# Stripe is told 200 at once and will not send an event again, so a failing handler (or an event that
# cannot apply yet, a refund before its payment) is retried after 2, 4, 8 ... s, at most an hour apart,
# for three days (Stripe's own horizon) from receipt; only then is the event parked as failed.
#: first wait before an event that failed is processed again (it doubles each time)
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=2.0)
#: longest wait between two tries of an event
WEBHOOK_RETRY_MAX_SECONDS = env.float("WEBHOOK_RETRY_MAX_SECONDS", default=3600.0)
#: seconds after its receipt an event that keeps failing is parked as `failed` (Stripe's own three days)
WEBHOOK_RETRY_HORIZON_SECONDS = env.int("WEBHOOK_RETRY_HORIZON_SECONDS", default=3 * 24 * 3600)
#: drain tasks that may process events at once (each claims batches no other holds); below the payments worker's
#: concurrency, so the mirror and payments tasks always find a process
WEBHOOK_DRAINERS = env.int("WEBHOOK_DRAINERS", default=2)
#: days after receipt settled events (processed, ignored, refused) are deleted, every night; parked and waiting
#: ones are kept. 0 keeps everything; never less than Stripe's three days of redelivery
WEBHOOK_EVENT_RETENTION_DAYS = env.int("WEBHOOK_EVENT_RETENTION_DAYS", default=90)
# Stripe delivers an event again for up to three days: a stored event is what recognises the redelivery.
STRIPE_REDELIVERY_DAYS = 3
if 0 < WEBHOOK_EVENT_RETENTION_DAYS * 86400 < max(STRIPE_REDELIVERY_DAYS * 86400, WEBHOOK_RETRY_HORIZON_SECONDS):
    raise ImproperlyConfigured(
        f"WEBHOOK_EVENT_RETENTION_DAYS={WEBHOOK_EVENT_RETENTION_DAYS} is shorter than the days Stripe may deliver "
        "an event again, or than WEBHOOK_RETRY_HORIZON_SECONDS (0 keeps every event)"
    )
if WEBHOOK_EVENT_RETENTION_DAYS:
    CELERY_BEAT_SCHEDULE["webhook-events-prune"] = {
        "task": "apps.payments.tasks.webhook_events_prune_task",
        #: the hour (the site's time zone) of the nightly deletion of settled events, at half past
        "schedule": crontab(hour=env.int("WEBHOOK_EVENT_PRUNE_HOUR", default=4), minute=30),
    }
CELERY_BEAT_SCHEDULE["webhook-requeue-stale"] = {
    "task": "apps.payments.tasks.webhook_requeue_stale_task",
    "schedule": 30.0,
}
CELERY_BEAT_SCHEDULE["mirror-requeue-stale"] = {
    "task": "apps.payments.tasks.mirror_requeue_stale_task",
    "schedule": 30.0,
}

# --- Orders ----------------------------------------------------------------------------------

#: days back the nightly money check compares our paid orders, payments and refunds with Stripe's
BOOKS_CHECK_DAYS = env.int("BOOKS_CHECK_DAYS", default=3)
#: the money check stops this many seconds before now: what Stripe did that recently may still be on its way
#: as an event
BOOKS_SETTLE_SECONDS = env.int("BOOKS_SETTLE_SECONDS", default=15 * 60)
CELERY_BEAT_SCHEDULE["books-check"] = {
    "task": "apps.payments.tasks.books_check_task",
    #: the hour of the nightly money check, at a quarter past
    "schedule": crontab(hour=env.int("BOOKS_CHECK_HOUR", default=3), minute=15),
}
# A refund asked for here whose answer was lost (its process died after asking Stripe) is finished by a worker.
CELERY_BEAT_SCHEDULE["refund-requests-finish"] = {
    "task": "apps.payments.orders.tasks.refund_requests_finish_task",
    "schedule": 60.0,
}
# An order whose session or intent Stripe did not answer for, and no retry came back to, is closed by a worker.
CELERY_BEAT_SCHEDULE["unstarted-orders-close"] = {
    "task": "apps.payments.orders.tasks.unstarted_orders_close_task",
    "schedule": 30.0,
}
#: days after paying an owner may still cancel a paid order (a full refund); 0 leaves refunds to staff
ORDER_SELF_REFUND_DAYS = env.int("ORDER_SELF_REFUND_DAYS", default=14)
#: seconds in which the same cart from the same user gets the same open checkout or intent back, not a second
#: order
CHECKOUT_REUSE_SECONDS = env.int("CHECKOUT_REUSE_SECONDS", default=300)
#: hours a client's `Idempotency-Key` gives back the first answer
IDEMPOTENCY_KEY_HOURS = env.int("IDEMPOTENCY_KEY_HOURS", default=24)

# --- Mail -------------------------------------------------------------------------------------

#: how mail leaves: `smtp://host:25`, `smtp+tls://user:password@host:587`, `consolemail://` (printed in the
#: worker's log)
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST", "")
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
#: seconds the mail server may take to answer
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
#: the sender of every message
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Shop <shop@example.com>")
#: the shop's name in messages and in the admin
SITE_NAME = env.str("SITE_NAME", default="Shop")
#: the shop's public address: links in messages, and by default the one host checkout sends customers back to
SITE_URL = env.str("SITE_URL", default="http://localhost:8000").rstrip("/")
#: the hosts checkout may send a customer back to (`success_url`, `cancel_url`), comma-separated; a leading dot
#: admits subdomains. Over https unless `DEBUG`; by default `SITE_URL`'s host
CHECKOUT_REDIRECT_HOSTS = env.list("CHECKOUT_REDIRECT_HOSTS", default=[]) or [urlsplit(SITE_URL).hostname or ""]
#: where the link in the welcome mail leads; `{token}` is replaced (point it at your front end if you have one)
EMAIL_VERIFICATION_URL = env.str(
    "EMAIL_VERIFICATION_URL", default=f"{SITE_URL}/api/v1/auth/verify-email?token={{token}}"
)
#: tries of a message the server defers (4xx, no connection) before it is `failed`
MAIL_MAX_ATTEMPTS = env.int("MAIL_MAX_ATTEMPTS", default=6)
#: first wait before a deferred message is tried again (it doubles each time)
MAIL_RETRY_BASE_SECONDS = env.float("MAIL_RETRY_BASE_SECONDS", default=30.0)
#: longest wait between two tries of a message
MAIL_RETRY_MAX_SECONDS = env.float("MAIL_RETRY_MAX_SECONDS", default=1800.0)
#: seconds after it was due that the beat sends a queued message its task has not sent
MAIL_STALE_AFTER_SECONDS = env.int("MAIL_STALE_AFTER_SECONDS", default=60)
# A worker holds a message this long while sending; longer than a task may run, so only a dead worker's expires.
MAIL_SEND_LEASE_SECONDS = CELERY_TASK_TIME_LIMIT + 30
CELERY_BEAT_SCHEDULE["mail-send-due"] = {"task": "apps.mail.tasks.messages_send_due_task", "schedule": 30.0}

# --- Logging ----------------------------------------------------------------------------------

# Either way each line names the request, user, Celery task and Stripe request it was written for (config/logs.py).
#: `keyvalue` (for people) or `json` (one object per line, for a log pipeline)
LOG_FORMAT = env.str("LOG_FORMAT", default="keyvalue")
if LOG_FORMAT not in ("keyvalue", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be keyvalue or json, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "keyvalue": {
            "format": "ts=%(asctime)s level=%(levelname)s logger=%(name)s request_id=%(request_id)s "
            "user_id=%(user_id)s task_id=%(task_id)s stripe_request_id=%(stripe_request_id)s %(message)s"
        },
        "json": {"()": "config.logs.JsonFormatter"},
    },
    "filters": {"context": {"()": "config.logs.ContextFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]},
    },
    #: the lowest level logged: `DEBUG`, `INFO`, `WARNING`, `ERROR`
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}
# Celery logs through the configuration above (the same format and context), not a handler of its own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Metrics and error reporting -----------------------------------------------------------------

#: the bearer token `/metrics` asks for; empty turns the endpoint off (404)
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
#: where every process of this machine (web and workers) keeps its counters, summed at each scrape; empty keeps
#: them per process. `make run` empties it at start
METRICS_DIR = env.str("METRICS_DIR", default=str(VAR_DIR / "metrics"))
#: `/health/` says `degraded` while a change has waited longer than this many seconds to reach Stripe
HEALTH_MIRROR_BACKLOG_SECONDS = env.int("HEALTH_MIRROR_BACKLOG_SECONDS", default=600)

#: where errors (with their request or task) go in Sentry; empty sends none. Nothing personal is sent
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    from config.logs import scrub_error_report

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        #: the environment Sentry files the errors under
        environment=env.str("SENTRY_ENVIRONMENT", default="production"),
        #: the share of requests and tasks traced for Sentry's performance view (0 to 1)
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
        send_default_pii=False,
        # A frame's locals hold Stripe's request headers (the secret key) and bodies (customers' emails); a
        # request body holds passwords and addresses. The stack and the message are what a fix needs.
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrub_error_report,
    )
