"""What the mirror does when users or the catalog change (apps/payments/mirror/receivers.py): each signal the
users app and the catalog send becomes a new version of the object's mirror row, in the write's own transaction,
and a push queued once it commits; a change to what Stripe does not hold sends nothing; a deleted user is sent
as a deletion, an archived product or price as a change (Stripe archives them too).

Here through the users' and the catalog's own services, with what is published to the broker recorded and no
worker. What a version and its push are (coalescing, a price waiting for its product, no echo of Stripe's own
changes) is in tests/payments/mirror/test_outbox.py; the services' signals themselves in
tests/users/test_signals.py and tests/catalog/test_signals.py.
"""

import pytest
from django.db import transaction

from apps.catalog import services as catalog
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.mirror.outbox import MIRROR_SYNC_TASK
from apps.users import services as users
from tests.catalog.factories import PriceFactory, ProductFactory
from tests.payments.factories import MirrorRecordFactory
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-unusual-passphrase-42"
COALESCE = 1.5


@pytest.fixture(autouse=True)
def mirror_on(settings):
    settings.STRIPE_MIRROR_ENABLED = True
    settings.MIRROR_COALESCE_SECONDS = COALESCE


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run the block, then what it left for after its commit."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def _pushes(queued_tasks) -> list[tuple]:
    """What was queued for the mirror (a signup queues its mail too)."""
    return [task for task in queued_tasks if task[0] == MIRROR_SYNC_TASK]


def _row(kind: str, object_id: int) -> MirrorRecord:
    return MirrorRecord.objects.get(kind=kind, object_id=object_id)


def _in_stripe(kind: str, object_id: int, stripe_id: str) -> MirrorRecord:
    return MirrorRecordFactory(
        kind=kind, object_id=object_id, stripe_id=stripe_id, state=MirrorState.SYNCED, version=1, synced_version=1
    )


class TestUsers:
    def test_a_user_who_signs_up_is_sent_to_stripe_once_the_signup_commits(
        self, queued_tasks, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=False) as on_commit:
            ada = users.user_create(email="ada@example.com", password=PASSWORD)
        before_commit = _pushes(queued_tasks)
        for callback in on_commit:
            callback()

        row = _row(MirrorKind.USER, ada.pk)
        assert (row.state, row.version, row.deleted) == (MirrorState.PENDING, 1, False)
        assert before_commit == []
        assert _pushes(queued_tasks) == [(MIRROR_SYNC_TASK, (row.pk,), None)]

    def test_a_signup_that_rolls_back_leaves_nothing_to_send(self, queued_tasks, committed):
        signed_up = []

        def signup_failing_after_the_user_is_written() -> None:
            with transaction.atomic():
                signed_up.append(users.user_create(email="ada@example.com", password=PASSWORD).pk)
                raise RuntimeError("the signup failed after the user was written")

        with committed(), pytest.raises(RuntimeError):
            signup_failing_after_the_user_is_written()

        assert not MirrorRecord.objects.filter(kind=MirrorKind.USER, object_id=signed_up[0]).exists()
        assert _pushes(queued_tasks) == []

    @pytest.mark.parametrize("change", [{"name": "Ada L."}, {"email": "ada@elsewhere.example.com"}])
    def test_a_new_name_or_email_is_a_new_version_for_stripe(self, queued_tasks, committed, change):
        ada = UserFactory(name="Ada")
        row = _in_stripe(MirrorKind.USER, ada.pk, "cus_ada")

        with committed():
            users.user_update(user=ada, data=change)

        row.refresh_from_db()
        assert (row.state, row.version, row.synced_version) == (MirrorState.PENDING, 2, 1)
        assert _pushes(queued_tasks) == [(MIRROR_SYNC_TASK, (row.pk,), COALESCE)]

    def test_a_verified_address_is_not_something_stripe_holds_and_sends_nothing(self, queued_tasks, committed):
        ada = UserFactory()
        row = _in_stripe(MirrorKind.USER, ada.pk, "cus_ada")

        with committed():
            users.user_verify_email(token=users.email_verification_token(user=ada))

        row.refresh_from_db()
        assert (row.state, row.version) == (MirrorState.SYNCED, 1)
        assert _pushes(queued_tasks) == []

    def test_a_deleted_user_is_sent_as_a_deletion_of_their_customer(self, queued_tasks, committed):
        ada = UserFactory()
        row = _in_stripe(MirrorKind.USER, ada.pk, "cus_ada")

        with committed():
            users.user_delete(user=ada)

        row.refresh_from_db()
        assert (row.deleted, row.version, row.state) == (True, 2, MirrorState.PENDING)
        assert _pushes(queued_tasks) == [(MIRROR_SYNC_TASK, (row.pk,), COALESCE)]


class TestTheCatalog:
    def test_a_new_product_is_sent_at_once(self, queued_tasks, committed):
        with committed():
            teapot = catalog.product_create(name="Teapot")

        row = _row(MirrorKind.PRODUCT, teapot.pk)
        assert (row.state, row.version) == (MirrorState.PENDING, 1)
        assert _pushes(queued_tasks) == [(MIRROR_SYNC_TASK, (row.pk,), None)]

    def test_an_edited_product_is_a_new_version(self, queued_tasks, committed):
        teapot = ProductFactory(name="Teapot")
        row = _in_stripe(MirrorKind.PRODUCT, teapot.pk, "prod_teapot")

        with committed():
            catalog.product_update(product=teapot, data={"name": "Big teapot"})

        assert _row(MirrorKind.PRODUCT, teapot.pk).version == 2
        assert _pushes(queued_tasks) == [(MIRROR_SYNC_TASK, (row.pk,), COALESCE)]

    def test_an_archived_product_is_a_change_for_stripe_not_a_deletion(self, queued_tasks, committed):
        teapot = ProductFactory()
        _in_stripe(MirrorKind.PRODUCT, teapot.pk, "prod_teapot")

        with committed():
            catalog.product_archive(product=teapot)

        row = _row(MirrorKind.PRODUCT, teapot.pk)
        assert (row.version, row.deleted, row.state) == (2, False, MirrorState.PENDING)
        assert len(_pushes(queued_tasks)) == 1

    def test_a_new_price_of_a_product_in_stripe_is_sent_at_once(self, queued_tasks, committed):
        teapot = ProductFactory()
        _in_stripe(MirrorKind.PRODUCT, teapot.pk, "prod_teapot")

        with committed():
            price = catalog.price_create(product=teapot, unit_amount=4500, currency="eur")

        row = _row(MirrorKind.PRICE, price.pk)
        assert (row.state, row.version) == (MirrorState.PENDING, 1)
        assert _pushes(queued_tasks) == [(MIRROR_SYNC_TASK, (row.pk,), None)]

    def test_a_new_amount_is_a_new_version_of_the_price(self, queued_tasks, committed):
        price = PriceFactory(unit_amount=4500, currency="eur")
        _in_stripe(MirrorKind.PRODUCT, price.product_id, "prod_teapot")
        row = _in_stripe(MirrorKind.PRICE, price.pk, "price_teapot")

        with committed():
            catalog.price_update(price=price, data={"unit_amount": 5000})

        assert _row(MirrorKind.PRICE, price.pk).version == 2
        assert _pushes(queued_tasks) == [(MIRROR_SYNC_TASK, (row.pk,), COALESCE)]

    def test_an_archived_price_is_a_change_for_stripe_not_a_deletion(self, queued_tasks, committed):
        price = PriceFactory()
        _in_stripe(MirrorKind.PRODUCT, price.product_id, "prod_teapot")
        _in_stripe(MirrorKind.PRICE, price.pk, "price_teapot")

        with committed():
            catalog.price_archive(price=price)

        row = _row(MirrorKind.PRICE, price.pk)
        assert (row.version, row.deleted, row.state) == (2, False, MirrorState.PENDING)
        assert len(_pushes(queued_tasks)) == 1
