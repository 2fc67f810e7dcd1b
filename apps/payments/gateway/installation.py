"""Which installation this is, in a Stripe account that several may share (a team's laptops on one
test account, a wiped development database beside the emulator's kept state).

Every Stripe object the mirror writes carries `metadata.app_namespace` beside `metadata.app_ref`;
an object of another namespace (or of none) is never adopted, matched to a local row or reconciled,
so `catalog.product:7` of one database is never taken for `catalog.product:7` of another.
"""

import secrets
from functools import cache

from django.conf import settings
from django.db import IntegrityError, transaction

from apps.payments.gateway.models import Installation

INSTALLATION_PK = 1  # one row, ever
NAMESPACE_KEY = "app_namespace"
APP_REF_KEY = "app_ref"


def installation_namespace() -> str:
    """`STRIPE_APP_NAMESPACE` when set, else the one generated once into the database."""
    return settings.STRIPE_APP_NAMESPACE or _stored_namespace()


@cache
def _stored_namespace() -> str:
    # It never changes once written, so each process reads it once.
    found = Installation.objects.filter(pk=INSTALLATION_PK).values_list("namespace", flat=True).first()
    if found:
        return found
    try:
        with transaction.atomic():
            return Installation.objects.create(pk=INSTALLATION_PK, namespace=secrets.token_hex(6)).namespace
    except IntegrityError:  # another process wrote it a moment ago
        return Installation.objects.get(pk=INSTALLATION_PK).namespace


def stripe_refs(app_ref: str) -> dict[str, str]:
    """The metadata that marks a Stripe object as the mirror of one of our rows."""
    return {APP_REF_KEY: app_ref, NAMESPACE_KEY: installation_namespace()}


def is_ours(metadata: dict | None) -> bool:
    """The object was written by this installation (it carries our namespace)."""
    return (metadata or {}).get(NAMESPACE_KEY) == installation_namespace()


def of_another_installation(metadata: dict | None) -> bool:
    """The object carries another installation's namespace (one with none may still be ours to match)."""
    namespace = (metadata or {}).get(NAMESPACE_KEY)
    return bool(namespace) and namespace != installation_namespace()


def foreign_ref(metadata: dict | None) -> bool:
    """The object mirrors a row of some other installation (an `app_ref` without our namespace)."""
    return bool((metadata or {}).get(APP_REF_KEY)) and not is_ours(metadata)


def ref_search_query(app_ref: str) -> str:
    """Stripe's search query for the object that mirrors `app_ref` here."""
    return f"metadata['{APP_REF_KEY}']:'{app_ref}' AND metadata['{NAMESPACE_KEY}']:'{installation_namespace()}'"
