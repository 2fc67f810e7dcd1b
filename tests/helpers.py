"""Helpers the whole suite shares (fixtures live in conftest.py and the plugins it names)."""

import io
import logging
from contextlib import contextmanager
from urllib.parse import quote

from django.conf import settings
from django.db import connection
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


def database_url(name: str | None = None) -> str:
    """The URL of the database this test run uses (or of another on its server), for processes started beside it."""
    db = connection.settings_dict
    auth = db["USER"] or ""
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = quote(db["HOST"] or "", safe="")
    netloc = f"{auth}@{host}" if auth else host
    if db["PORT"]:
        netloc += f":{db['PORT']}"
    return f"postgres://{netloc}/{name or db['NAME']}"
