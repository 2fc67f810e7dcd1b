"""`manage.py check --deploy`: API tokens are signed with a key of their own."""

from django.conf import settings
from django.core.checks import Error, Tags, register

MIN_SIGNING_KEY_LENGTH = 50


@register(Tags.security, deploy=True)
def check_jwt_signing_key(app_configs, **kwargs) -> list[Error]:
    key = settings.SIMPLE_JWT.get("SIGNING_KEY") or ""
    if len(key) >= MIN_SIGNING_KEY_LENGTH and key != settings.SECRET_KEY and not key.startswith("dev-"):
        return []
    return [
        Error(
            "JWT_SIGNING_KEY is missing, short, a development key or the same as DJANGO_SECRET_KEY: "
            "anyone who learns one key could mint API tokens for any user.",
            hint="Set JWT_SIGNING_KEY to 50+ random characters of its own.",
            id="users.E001",
        )
    ]
