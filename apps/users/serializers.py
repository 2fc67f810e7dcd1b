import time
from collections.abc import Callable

from django.conf import settings
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.utils import get_md5_hash_password

from apps.users.models import User
from config.api_conventions import StrictCharField


class RegisterInputSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = StrictCharField(write_only=True, trim_whitespace=False, max_length=128)
    name = StrictCharField(max_length=150, allow_blank=True, required=False, default="")


class UserOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "email", "name")
        read_only_fields = fields


# Read-only fields other apps add to `/users/me` (payments adds `active_plans`): name -> a field factory.
# Users imports no other app; they register here from their `AppConfig.ready()`.
ME_EXTRA_FIELDS: dict[str, Callable[[], serializers.Field]] = {}


class MeOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "email", "name", "email_verified", "is_staff", "date_joined")
        read_only_fields = fields

    def get_fields(self):
        fields = super().get_fields()
        fields.update({name: make() for name, make in ME_EXTRA_FIELDS.items()})
        return fields


class MeUpdateInputSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254, required=False)
    name = StrictCharField(max_length=150, allow_blank=True, required=False)


class LogoutInputSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class VerifyEmailInputSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=500)


class VerifyEmailOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("email", "email_verified")
        read_only_fields = fields


# --- tokens --------------------------------------------------------------------------------------------------

LOGIN_TIME_CLAIM = "auth_time"


class TokenObtainInputSerializer(TokenObtainPairSerializer):
    """Login: the refresh token remembers when its session began (refreshing copies the claim along)."""

    @classmethod
    def get_token(cls, user):
        token = super().get_token(user)
        token[LOGIN_TIME_CLAIM] = int(time.time())
        return token


class TokenRefreshInputSerializer(TokenRefreshSerializer):
    """A refresh is refused (401, never a 500) for a deleted or inactive user, a password changed since the
    login, or a session older than `JWT_SESSION_MAX_DAYS`: rotation alone would let a session live forever."""

    def validate(self, attrs):
        refresh = self.token_class(attrs["refresh"])
        user = User.objects.filter(pk=refresh.payload.get(jwt_settings.USER_ID_CLAIM)).first()
        if user is None or not user.is_active:
            raise AuthenticationFailed("No active account found for the given token.", "no_active_account")
        if refresh.payload.get(jwt_settings.REVOKE_TOKEN_CLAIM) != get_md5_hash_password(user.password):
            raise AuthenticationFailed("The password was changed since this login: log in again.", "password_changed")
        began = refresh.payload.get(LOGIN_TIME_CLAIM)
        if not isinstance(began, int) or time.time() - began > settings.JWT_SESSION_MAX_DAYS * 86400:
            raise AuthenticationFailed(
                f"Sessions last {settings.JWT_SESSION_MAX_DAYS} days from login: log in again.", "session_expired"
            )
        return super().validate(attrs)
