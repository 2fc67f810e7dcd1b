from django.urls import re_path

from apps.users import api

# A trailing slash is optional: clients write both, and a POST cannot be redirected.
urlpatterns = [
    re_path(r"^auth/register/?$", api.RegisterApi.as_view(), name="auth-register"),
    re_path(r"^auth/token/?$", api.TokenObtainApi.as_view(), name="auth-token"),
    re_path(r"^auth/token/refresh/?$", api.TokenRefreshApi.as_view(), name="auth-token-refresh"),
    re_path(r"^auth/logout/?$", api.LogoutApi.as_view(), name="auth-logout"),
    re_path(r"^auth/verify-email/?$", api.VerifyEmailApi.as_view(), name="auth-verify-email"),
    re_path(r"^auth/verify-email/resend/?$", api.VerifyEmailResendApi.as_view(), name="auth-verify-email-resend"),
    re_path(r"^users/me/?$", api.MeApi.as_view(), name="users-me"),
]
