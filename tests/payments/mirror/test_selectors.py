"""Reads of the mirror (apps/payments/mirror/selectors.py): its rows by state and kind, how many objects it keeps
in Stripe, and how far behind it is (what the health check and the dashboard show an operator).

Here on rows made directly. The same reads over HTTP (the staff API, the admin) are in
tests/payments/mirror/test_commands_and_api.py; the health check's verdict on them in tests/test_health.py.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.payments.mirror.models import MirrorKind, MirrorState
from apps.payments.mirror.selectors import mirror_health, mirror_record_list, mirrored_object_count
from tests.catalog.factories import PriceFactory
from tests.payments.factories import MirrorRecordFactory
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_rows_are_listed_by_state_and_kind():
    failed_price = MirrorRecordFactory(kind=MirrorKind.PRICE, state=MirrorState.FAILED)
    MirrorRecordFactory(kind=MirrorKind.PRODUCT, state=MirrorState.FAILED)
    MirrorRecordFactory(kind=MirrorKind.PRICE, state=MirrorState.SYNCED)

    assert list(mirror_record_list(state=MirrorState.FAILED, kind=MirrorKind.PRICE)) == [failed_price]
    assert mirror_record_list(state=MirrorState.FAILED).count() == 2
    assert mirror_record_list().count() == 3


def test_the_objects_kept_in_stripe_are_counted_per_kind():
    UserFactory.create_batch(2)
    PriceFactory.create_batch(3)  # three products too

    assert [mirrored_object_count(kind=kind) for kind in (MirrorKind.USER, MirrorKind.PRODUCT, MirrorKind.PRICE)] == [
        2,
        3,
        3,
    ]


def test_health_counts_every_state_and_names_the_oldest_change_still_waiting():
    now = timezone.now()
    MirrorRecordFactory(state=MirrorState.PENDING, pending_since=now - timedelta(minutes=3))
    MirrorRecordFactory(state=MirrorState.PENDING, pending_since=now - timedelta(minutes=12))
    MirrorRecordFactory(state=MirrorState.SYNCED, pending_since=None)

    health = mirror_health()

    assert health["by_state"] == {"pending": 2, "synced": 1, "failed": 0}
    assert health["oldest_pending"] == now - timedelta(minutes=12)
    assert 12 * 60 <= health["oldest_pending_age_seconds"] < 13 * 60


def test_a_mirror_with_nothing_waiting_is_not_behind():
    MirrorRecordFactory(state=MirrorState.SYNCED, pending_since=None)

    health = mirror_health()

    assert (health["oldest_pending"], health["oldest_pending_age_seconds"]) == (None, 0.0)  # a gauge at zero
