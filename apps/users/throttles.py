"""Rate limits on the auth endpoints, counted in the shared cache so every web process sees the same count."""

import hashlib

from rest_framework.throttling import SimpleRateThrottle

from apps.users.models import normalize_email


class AuthRateThrottle(SimpleRateThrottle):
    """Per client address, across register, token, refresh and logout."""

    scope = "auth"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginEmailRateThrottle(SimpleRateThrottle):
    """Per email address tried, so guessing one account's password from many addresses is slow too."""

    scope = "login_email"

    def get_cache_key(self, request, view):
        email = request.data.get("email") if hasattr(request.data, "get") else None
        if not isinstance(email, str) or not email.strip():
            return None
        # Hashed so the cache never holds the addresses people tried.
        ident = hashlib.sha256(normalize_email(email).encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class VerificationMailThrottle(SimpleRateThrottle):
    """Per signed-in user: asking for the verification link again cannot flood their inbox."""

    scope = "verification_mail"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
