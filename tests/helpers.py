"""Helpers the whole suite shares (fixtures live in conftest.py and the plugins it names)."""

import io
import logging
from contextlib import contextmanager

from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from config.logs import ContextFilter, JsonFormatter


def client_for(user) -> APIClient:
    """An API client that authenticates with a real JWT access token for `user`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    return client


@contextmanager
def project_log(log_format: str = "keyvalue"):
    """Log lines as the project's console handler writes them (with their context), kept in a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter(settings.LOGGING["formatters"]["keyvalue"]["format"])
    )
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
