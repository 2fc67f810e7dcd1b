"""WSGI entry point (gunicorn config.wsgi)."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.utils.module_loading import import_string

from config.deploy import refuse_unsafe_start

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

django_application = get_wsgi_application()
refuse_unsafe_start()
# Paths answered by a bare WSGI app of their own, outside Django's middleware (settings.FAST_WSGI_PATHS).
_fast_paths = {path: import_string(target) for path, target in settings.FAST_WSGI_PATHS.items()}


def application(environ, start_response):
    fast = _fast_paths.get(environ.get("PATH_INFO", ""))
    if fast is not None:
        return fast(environ, start_response)
    return django_application(environ, start_response)
