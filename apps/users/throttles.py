"""Rate limits on the auth endpoints and the admin login, counted in the shared cache so every web process
sees the same count.

Each endpoint has its own budget per client address (behind a proxy the address is the client's, through
`DJANGO_NUM_PROXIES`), so one client exhausting logins blocks neither everyone else nor its own refreshes.
Guessing one account's password is slowed per account and address (one client) and per account (many
clients); the per-account limit is counted over a minute, so no one can lock a user out for longer than a
minute after they stop. While they keep guessing from many addresses, the owner still logs in from an
address they have logged in from before (`LOGIN_KNOWN_ADDRESS_DAYS`): the per-account limit does not count
those, only the per-address ones do.
"""

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.utils.crypto import salted_hmac

from apps.users.models import normalize_email
from config.api_conventions import ConfiguredRateThrottle


class PerAddressThrottle(ConfiguredRateThrottle):
    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AuthRateThrottle(PerAddressThrottle):
    """Per client address: logout and the email verification link."""

    scope = "auth"


class LoginRateThrottle(PerAddressThrottle):
    """Per client address, every login attempt whatever the account (password spraying)."""

    scope = "login"


class RegisterRateThrottle(PerAddressThrottle):
    scope = "register"


class RefreshRateThrottle(PerAddressThrottle):
    scope = "refresh"


def login_email(request) -> str | None:
    """The account a login names: `email` in the API's body, `username` in the admin's form."""
    data = getattr(request, "data", None)
    if data is None:  # a plain Django request (the admin login)
        data = request.POST
    email = (data.get("email") or data.get("username")) if hasattr(data, "get") else None
    if not isinstance(email, str) or not email.strip():
        return None
    # Hashed so the cache never holds the addresses people tried.
    return hashlib.sha256(normalize_email(email).encode()).hexdigest()


class LoginEmailAddressRateThrottle(ConfiguredRateThrottle):
    """Per account and client address: one client guessing one account's password."""

    scope = "login_email_address"

    def get_cache_key(self, request, view):
        email = login_email(request)
        if email is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"{email}:{self.get_ident(request)}"}


class LoginEmailRateThrottle(ConfiguredRateThrottle):
    """Per account, whoever tries it: many clients guessing one account's password together."""

    scope = "login_email"

    def get_cache_key(self, request, view):
        email = login_email(request)
        if email is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": email}


# In this order: per address, per account and address, per account (see login_refused_for).
LOGIN_THROTTLES = (LoginRateThrottle, LoginEmailAddressRateThrottle, LoginEmailRateThrottle)


class VerificationMailThrottle(ConfiguredRateThrottle):
    """Per signed-in user: asking for the verification link again cannot flood their inbox."""

    scope = "verification_mail"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


def _known_address_key(request, email_hash: str) -> str:
    # Keyed with the server's secret: the cache must not tell anyone which addresses an account logs in from.
    place = salted_hmac("login_known", f"{email_hash}:{LoginRateThrottle().get_ident(request)}", algorithm="sha256")
    return f"login_known:{place.hexdigest()}"


def login_succeeded(request, *, email: str) -> None:
    """The owner of `email` just logged in from this address: guessing elsewhere cannot lock them out of it."""
    if settings.LOGIN_KNOWN_ADDRESS_DAYS > 0:
        email_hash = hashlib.sha256(normalize_email(email).encode()).hexdigest()
        cache.set(_known_address_key(request, email_hash), True, timeout=settings.LOGIN_KNOWN_ADDRESS_DAYS * 86400)


def _from_known_address(request) -> bool:
    email_hash = login_email(request)
    if email_hash is None or settings.LOGIN_KNOWN_ADDRESS_DAYS <= 0:
        return False
    return bool(cache.get(_known_address_key(request, email_hash)))


def login_refused_for(request) -> float | None:
    """Seconds to wait when a login attempt (API or admin) is over one of its limits, else None.

    The limits are asked in order and the first refusal ends it: an attempt the address's own limits
    refused is not counted against the account, so one address cannot spend an account's budget (and lock
    its owner out) with attempts it was never allowed to make. An address the owner has logged in from is
    held to its own limits only."""
    known = _from_known_address(request)
    for throttle_class in LOGIN_THROTTLES:
        if known and throttle_class is LoginEmailRateThrottle:
            continue
        throttle = throttle_class()
        if not throttle.allow_request(request, None):
            return throttle.wait() or 1.0
    return None
