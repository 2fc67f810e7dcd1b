"""Which Stripe object mirrors a local one (apps/payments/mirror/refs.py), and what a payment does when it needs
one Stripe does not hold yet: it is pushed at once, with at most one Stripe call inside a web request, or the
caller is told to come back (`NotInStripe`, a 503) while a worker brings it; never a wait.

Here with Stripe played by an in-memory stand-in and a lease holder kept alive in Redis as a worker would. The
whole path over HTTP (a checkout whose buyer or product is not in Stripe yet: a quick 503, then a 201; a worker
killed while mirroring the buyer) is covered in tests/journeys/test_checkout.py, payment links and prices Stripe
refuses in tests/journeys/test_money_rules.py.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.payments.gateway.policies import RETRY_AFTER_SECONDS, serving_web_request
from apps.payments.mirror import lease_heartbeats
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.mirror.outbox import MIRROR_SYNC_TASK
from apps.payments.mirror.refs import (
    NotInStripe,
    PriceNotInStripe,
    catalog_refs,
    ensure_in_stripe,
    ensure_price_in_stripe,
    stripe_id_of,
)
from apps.payments.mirror.specs import price_immutable
from tests.catalog.factories import PriceFactory
from tests.payments.factories import MirrorRecordFactory
from tests.payments.stripe_stand_in import refused, unreachable
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db


def _customer(call) -> dict:
    return {
        "id": "cus_new",
        "object": "customer",
        "email": call.params["email"],
        "name": call.params["name"],
        "metadata": call.params["metadata"],
        "created": 1_767_268_800,
        "livemode": False,
    }


def _user_row(user) -> MirrorRecord:
    return MirrorRecord.objects.get(kind=MirrorKind.USER, object_id=user.pk)


class TestReads:
    def test_a_local_object_has_no_stripe_id_until_it_is_pushed(self):
        MirrorRecordFactory(kind=MirrorKind.PRODUCT, object_id=7, stripe_id="")
        MirrorRecordFactory(kind=MirrorKind.PRODUCT, object_id=8, stripe_id="prod_8")

        assert (stripe_id_of(MirrorKind.PRODUCT, 7), stripe_id_of(MirrorKind.PRODUCT, 8)) == (None, "prod_8")
        assert stripe_id_of(MirrorKind.PRODUCT, 9) is None

    def test_stripe_ids_are_read_back_as_the_catalog_rows_they_stand_for(self):
        price = PriceFactory(product__name="Teapot")
        MirrorRecordFactory(kind=MirrorKind.PRODUCT, object_id=price.product_id, stripe_id="prod_t")
        MirrorRecordFactory(kind=MirrorKind.PRICE, object_id=price.pk, stripe_id="price_t")
        MirrorRecordFactory(kind=MirrorKind.USER, object_id=price.pk, stripe_id="cus_t")  # not catalog

        refs = catalog_refs({"prod_t", "price_t", "cus_t", "prod_unknown"})

        assert (refs.products, refs.prices, refs.product_names) == (
            {"prod_t": price.product_id},
            {"price_t": price.pk},
            {price.product_id: "Teapot"},
        )


class TestEnsureInStripe:
    def test_an_object_stripe_holds_is_named_without_asking_stripe(self, stripe_stand_in):
        user = UserFactory()
        MirrorRecordFactory(kind=MirrorKind.USER, object_id=user.pk, stripe_id="cus_1", state=MirrorState.SYNCED)

        assert ensure_in_stripe(MirrorKind.USER, user.pk) == "cus_1"
        assert stripe_stand_in.calls == []

    def test_a_buyer_stripe_does_not_hold_yet_is_pushed_now_with_one_call(self, stripe_stand_in, queued_tasks):
        user = UserFactory(email="ada@example.com", name="Ada")
        stripe_stand_in.always("customers.create", _customer)

        with serving_web_request():
            customer = ensure_in_stripe(MirrorKind.USER, user.pk)

        assert customer == "cus_new"
        assert stripe_stand_in.paths == ["customers.create"]
        assert stripe_stand_in.calls[0].params["metadata"] == {
            "app_ref": f"users.user:{user.pk}",
            "app_namespace": "testsuite",
        }
        assert (_user_row(user).state, _user_row(user).stripe_id) == (MirrorState.SYNCED, "cus_new")

    def test_a_request_never_makes_a_second_call_and_a_worker_finishes_the_push(
        self, stripe_stand_in, queued_tasks, django_capture_on_commit_callbacks
    ):
        """A user from before the mirror may be in Stripe already: looked for first, which is the one call."""
        user = UserFactory(date_joined=timezone.now() - timedelta(days=30))
        stripe_stand_in.always("customers.search", []).always("customers.create", _customer)

        with (
            django_capture_on_commit_callbacks(execute=True),
            serving_web_request(),
            pytest.raises(NotInStripe) as later,
        ):
            ensure_in_stripe(MirrorKind.USER, user.pk)

        assert stripe_stand_in.paths == ["customers.search"]
        assert later.value.retry_after == RETRY_AFTER_SECONDS
        assert queued_tasks == [(MIRROR_SYNC_TASK, (_user_row(user).pk,), RETRY_AFTER_SECONDS)]
        assert _user_row(user).state == MirrorState.PENDING

    def test_stripe_out_of_reach_is_a_come_back_while_a_worker_pushes(
        self, stripe_stand_in, queued_tasks, django_capture_on_commit_callbacks
    ):
        user = UserFactory()
        stripe_stand_in.always("customers.create", unreachable())

        with django_capture_on_commit_callbacks(execute=True), pytest.raises(NotInStripe, match="not in Stripe yet"):
            ensure_in_stripe(MirrorKind.USER, user.pk)

        row = _user_row(user)
        assert (row.state, row.lease_owner) == (MirrorState.PENDING, "")  # the lease went back for the worker
        assert "Could not connect to Stripe" in row.last_error
        assert queued_tasks == [(MIRROR_SYNC_TASK, (row.pk,), RETRY_AFTER_SECONDS)]

    def test_redis_out_of_reach_is_a_come_back_not_a_crash(self, stripe_stand_in, queued_tasks, settings):
        # The pushers' heartbeats live in Redis: without it nothing may be pushed, and Stripe is never asked.
        settings.COORDINATION_REDIS_URL = "redis://127.0.0.1:1/0"
        user = UserFactory()

        with pytest.raises(NotInStripe, match="not in Stripe yet"):
            ensure_in_stripe(MirrorKind.USER, user.pk)

        assert stripe_stand_in.calls == []
        assert _user_row(user).lease_owner == ""

    def test_a_worker_pushing_it_right_now_is_not_waited_for_nor_raced(self, stripe_stand_in, queued_tasks):
        user = UserFactory()
        MirrorRecordFactory(
            kind=MirrorKind.USER,
            object_id=user.pk,
            version=1,
            lease_owner="worker-1",
            lease_until=timezone.now() + timedelta(minutes=2),
        )

        with lease_heartbeats.keep_alive("worker-1"), pytest.raises(NotInStripe, match="a worker is pushing it"):
            ensure_in_stripe(MirrorKind.USER, user.pk)

        assert stripe_stand_in.calls == []
        assert queued_tasks == []  # its own task brings it

    def test_without_stripe_configured_a_payment_is_told_to_come_back_much_later(self, stripe_stand_in, settings):
        settings.STRIPE_MIRROR_ENABLED = False

        with pytest.raises(NotInStripe) as later:
            ensure_in_stripe(MirrorKind.USER, UserFactory().pk)

        assert later.value.retry_after == 60
        assert not MirrorRecord.objects.exists()


class TestEnsurePriceInStripe:
    def _mirrored(self, price, *, immutable: dict | None = None, state=MirrorState.SYNCED, **fields) -> None:
        MirrorRecordFactory(
            kind=MirrorKind.PRODUCT, object_id=price.product_id, stripe_id="prod_1", state=MirrorState.SYNCED
        )
        MirrorRecordFactory(
            kind=MirrorKind.PRICE,
            object_id=price.pk,
            stripe_id="price_1",
            state=state,
            version=1,
            synced_version=1,
            pushed={"immutable": immutable if immutable is not None else price_immutable(price)},
            **fields,
        )

    def test_a_price_stripe_holds_as_the_catalog_has_it_is_named_without_asking(self, stripe_stand_in):
        price = PriceFactory(unit_amount=1200)
        self._mirrored(price)

        assert ensure_price_in_stripe(price) == "price_1"
        assert stripe_stand_in.calls == []

    def test_a_price_whose_amount_changed_a_second_ago_is_not_named_by_its_old_stripe_price(self, stripe_stand_in):
        price = PriceFactory(unit_amount=1200)
        self._mirrored(price, immutable={**price_immutable(price), "unit_amount": 1000})
        stripe_stand_in.always("prices.create", unreachable())

        with pytest.raises(NotInStripe):
            ensure_price_in_stripe(price)

        assert stripe_stand_in.calls_to("prices.create")[0].params["unit_amount"] == 1200

    def test_a_price_stripe_refuses_is_a_conflict_for_an_operator_with_stripes_reason(self, stripe_stand_in):
        price = PriceFactory(unit_amount=1200, currency="usd", product__name="Teapot")
        self._mirrored(price, immutable={**price_immutable(price), "unit_amount": 1000})
        stripe_stand_in.always("prices.create", refused("Invalid currency: usd is not supported here."))

        with pytest.raises(PriceNotInStripe, match=r"current price of Teapot \(1200 usd\).*Invalid currency"):
            ensure_price_in_stripe(price)

        assert MirrorRecord.objects.get(kind=MirrorKind.PRICE, object_id=price.pk).state == MirrorState.FAILED
