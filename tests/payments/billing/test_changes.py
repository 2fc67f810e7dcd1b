"""What a user (or staff) changes on a subscription (apps/payments/billing/changes.py): cancel at the end of the
period or at once, resume, another plan. Each change is asked of Stripe with a key of its own, and Stripe's answer
is stored at once, unless another store overtook it (then a worker reads it again).

Here with Stripe played by an in-memory stand-in: what is asked (parameters, proration, keys), what is refused
before asking, a refusal or a race with Stripe, and what is queued when the answer may not be the newest state.
The same changes over HTTP on subscriptions Stripe's test clock moves are covered in
tests/journeys/test_subscriptions.py (`test_an_upgrade_is_charged_now_and_only_staff_choose_another_proration`,
`test_changing_back_and_forth_is_never_a_replay_of_an_earlier_change`,
`test_a_change_never_waits_for_a_worker_storing_the_subscription`).
"""

import pytest
import stripe
from djstripe import models as djstripe_models

from apps.catalog.models import Price
from apps.payments import signals
from apps.payments.billing.changes import (
    SUBSCRIPTION_REFRESH_TASK,
    subscription_cancel,
    subscription_change_plan,
    subscription_resume,
)
from apps.payments.billing.locks import storing_state
from apps.payments.gateway.errors import StripeRefused
from apps.payments.orders.errors import SubscriptionActionRefused
from tests.payments.billing.factories import invoice_json, plan, subscribed, subscriber, subscription_json
from tests.payments.stripe_stand_in import refused
from tests.signal_recorder import SignalRecorder
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(db):
    return UserFactory()


@pytest.fixture
def pro(db):
    return plan("Pro", unit_amount=1500)


@pytest.fixture
def held(stripe_stand_in, ada, pro):
    """Ada's subscription `sub_1` to Pro, stored here; Stripe answers a change by applying its parameters."""
    subscription = subscribed(ada, pro)
    state = {"data": subscription_json("sub_1", customer=subscriber(ada), prices=[pro])}

    def update(call):
        data = {**state["data"], **{key: value for key, value in call.params.items() if key != "items"}}
        if "items" in call.params:
            moved_to = plan_by_stripe_id(call.params["items"][0]["price"])
            data = {
                **subscription_json("sub_1", customer=subscriber(ada), prices=[moved_to]),
                "latest_invoice": data.get("latest_invoice"),
            }
        data.pop("proration_behavior", None)
        state["data"] = data
        return data

    stripe_stand_in.always("subscriptions.update", update)
    stripe_stand_in.always("subscriptions.retrieve", lambda call: state["data"])
    return subscription


def plan_by_stripe_id(stripe_id: str) -> Price:
    return Price.objects.get(pk=int(stripe_id.removeprefix("price_")))


def _refreshes(queued_tasks: list[tuple]) -> list[tuple]:
    return [task for task in queued_tasks if task[0] == SUBSCRIPTION_REFRESH_TASK]


def _stored(subscription_id: str = "sub_1") -> dict:
    return djstripe_models.Subscription.objects.get(id=subscription_id).stripe_data


class TestCancel:
    def test_a_cancel_at_the_end_of_the_period_is_asked_and_stored(self, held, stripe_stand_in):
        answered = subscription_cancel(subscription=held, at_once=False)

        update = stripe_stand_in.calls_to("subscriptions.update")[0]
        assert (update.args, update.params) == (("sub_1",), {"cancel_at_period_end": True})
        assert update.idempotency_key.startswith("subscription:sub_1:cancel:")
        assert answered.stripe_data["cancel_at_period_end"] is True
        assert (_stored()["status"], _stored()["cancel_at_period_end"]) == ("active", True)

    def test_each_change_has_a_key_of_its_own_so_none_replays_an_earlier_one(self, held, stripe_stand_in):
        subscription_cancel(subscription=held, at_once=False)
        subscription_resume(subscription=held)
        subscription_cancel(subscription=held, at_once=False)

        keys = [call.idempotency_key for call in stripe_stand_in.calls_to("subscriptions.update")]
        assert len(set(keys)) == 3
        assert _stored()["cancel_at_period_end"] is True

    def test_a_cancel_at_once_ends_the_plan_and_says_so(self, held, stripe_stand_in, ada, pro):
        ended = {**subscription_json("sub_1", customer=subscriber(ada), prices=[pro]), "status": "canceled"}
        stripe_stand_in.answer("subscriptions.cancel", ended)

        with SignalRecorder(signals.subscription_canceled) as canceled:
            subscription_cancel(subscription=held, at_once=True)

        assert _stored()["status"] == "canceled"
        assert len(canceled.calls) == 1

    def test_a_cancel_at_once_finding_it_canceled_meanwhile_stores_that(self, held, stripe_stand_in, ada, pro):
        stripe_stand_in.answer("subscriptions.cancel", refused("No such subscription: 'sub_1'"))
        ended = {**subscription_json("sub_1", customer=subscriber(ada), prices=[pro]), "status": "canceled"}
        stripe_stand_in.always("subscriptions.retrieve", ended)

        subscription_cancel(subscription=held, at_once=True)

        assert _stored()["status"] == "canceled"

    def test_a_cancel_at_once_stripe_refuses_while_the_plan_runs_changes_nothing(self, held, stripe_stand_in):
        stripe_stand_in.answer("subscriptions.cancel", refused("Something else is wrong."))

        with pytest.raises(StripeRefused, match="Something else is wrong"):
            subscription_cancel(subscription=held, at_once=True)

        assert _stored()["status"] == "active"

    def test_a_key_without_the_right_to_cancel_is_an_answer_not_a_crash(self, held, stripe_stand_in):
        stripe_stand_in.answer("subscriptions.cancel", stripe.PermissionError("This key may not", http_status=403))

        with pytest.raises(StripeRefused):
            subscription_cancel(subscription=held, at_once=True)

    @pytest.mark.parametrize("status", ["canceled", "incomplete_expired"])
    def test_an_ended_subscription_is_refused_before_stripe_is_asked(self, stripe_stand_in, ada, pro, status):
        ended = subscribed(ada, pro, status=status)

        with pytest.raises(SubscriptionActionRefused, match=f"This subscription is {status}"):
            subscription_cancel(subscription=ended, at_once=False)
        with pytest.raises(SubscriptionActionRefused):
            subscription_change_plan(subscription=ended, price=plan(product=pro.product), proration=None)

        assert stripe_stand_in.calls == []


class TestResume:
    def test_a_subscription_not_set_to_cancel_has_nothing_to_resume(self, held, stripe_stand_in):
        with pytest.raises(SubscriptionActionRefused, match="nothing to resume"):
            subscription_resume(subscription=held)

        assert stripe_stand_in.paths == ["subscriptions.retrieve"]  # asked, in case a change was not stored yet

    def test_a_cancel_stripe_holds_but_not_stored_yet_can_be_resumed(self, held, stripe_stand_in):
        stripe_stand_in.always(
            "subscriptions.retrieve", lambda call: {**held.stripe_data, "cancel_at_period_end": True}
        )

        subscription_resume(subscription=held)

        assert stripe_stand_in.calls_to("subscriptions.update")[0].params == {"cancel_at_period_end": False}
        assert _stored()["cancel_at_period_end"] is False


class TestChangePlan:
    @pytest.mark.parametrize(
        ("unit_amount", "proration"), [(4500, "always_invoice"), (900, "create_prorations")], ids=["up", "down"]
    )
    def test_an_upgrade_is_charged_now_and_a_downgrade_credited_later(
        self, held, stripe_stand_in, pro, unit_amount, proration
    ):
        other = plan(product=pro.product, unit_amount=unit_amount)

        subscription_change_plan(subscription=held, price=other, proration=None)

        update = stripe_stand_in.calls_to("subscriptions.update")[0]
        assert update.params == {
            "items": [{"id": f"si_sub_1_{pro.pk}", "price": f"price_{other.pk}"}],
            "proration_behavior": proration,
        }
        assert update.idempotency_key.startswith(f"subscription:sub_1:plan:price_{other.pk}:")
        assert [item["price"]["id"] for item in _stored()["items"]["data"]] == [f"price_{other.pk}"]

    def test_staff_choose_another_proration(self, held, stripe_stand_in, pro):
        subscription_change_plan(subscription=held, price=plan(product=pro.product, unit_amount=4500), proration="none")

        assert stripe_stand_in.calls_to("subscriptions.update")[0].params["proration_behavior"] == "none"

    @pytest.mark.parametrize(
        ("other", "refusal"),
        [
            ({"interval": "year"}, "must bill as often"),
            ({"interval": "month", "interval_count": 3}, "must bill as often"),
            ({"currency": "usd"}, "subscription's currency"),
        ],
        ids=["yearly", "quarterly", "dollars"],
    )
    def test_a_plan_billed_otherwise_is_refused_before_stripe_is_asked(
        self, held, stripe_stand_in, pro, other, refusal
    ):
        with pytest.raises(SubscriptionActionRefused, match=refusal):
            subscription_change_plan(subscription=held, price=plan(product=pro.product, **other), proration=None)

        assert stripe_stand_in.calls == []

    def test_a_subscription_of_two_plans_cannot_change_its_plan_here(self, stripe_stand_in, ada, pro):
        both = subscribed(ada, pro, plan("Team"))

        with pytest.raises(SubscriptionActionRefused, match="one plan"):
            subscription_change_plan(
                subscription=both, price=plan(product=pro.product, unit_amount=4500), proration=None
            )

    def test_the_plan_it_is_on_is_refused_once_stripe_says_so_too(self, held, stripe_stand_in, pro):
        with pytest.raises(SubscriptionActionRefused, match="on this plan already"):
            subscription_change_plan(subscription=held, price=pro, proration=None)

        assert stripe_stand_in.paths == ["subscriptions.retrieve"]

    def test_back_to_the_stored_plan_after_a_change_not_stored_yet_goes_ahead(self, held, stripe_stand_in, ada, pro):
        plus = plan(product=pro.product, unit_amount=4500)
        moved = subscription_json("sub_1", customer=subscriber(ada), prices=[plus])
        stripe_stand_in.always("subscriptions.retrieve", moved)

        subscription_change_plan(subscription=held, price=pro, proration=None)

        update = stripe_stand_in.calls_to("subscriptions.update")[0]
        assert update.params["items"] == [{"id": f"si_sub_1_{plus.pk}", "price": f"price_{pro.pk}"}]
        assert update.params["proration_behavior"] == "create_prorations"  # from 45.00 back to 15.00

    def test_a_change_invoiced_now_stores_its_invoice(self, held, stripe_stand_in, ada, pro):
        plus = plan(product=pro.product, unit_amount=4500)
        update = stripe_stand_in.standing_answer("subscriptions.update")
        stripe_stand_in.always("subscriptions.update", lambda call: {**update(call), "latest_invoice": "in_2"})
        stripe_stand_in.answer(
            "invoices.retrieve",
            invoice_json(
                "in_2", customer=subscriber(ada), subscription_id="sub_1", billing_reason="subscription_update"
            ),
        )

        subscription_change_plan(subscription=held, price=plus, proration=None)

        assert djstripe_models.Invoice.objects.get(id="in_2").stripe_data["billing_reason"] == "subscription_update"


class TestAnAnswerThatMayNotBeTheNewest:
    def test_an_answer_overtaken_by_a_drain_is_stored_and_a_worker_reads_it_again(
        self, held, stripe_stand_in, queued_tasks, django_capture_on_commit_callbacks
    ):
        update = stripe_stand_in.standing_answer("subscriptions.update")

        def a_drain_stores_meanwhile(call):
            with storing_state("sub_1"):
                pass
            return update(call)

        stripe_stand_in.always("subscriptions.update", a_drain_stores_meanwhile)

        with django_capture_on_commit_callbacks(execute=True):
            subscription_cancel(subscription=held, at_once=False)

        assert _stored()["cancel_at_period_end"] is True
        assert _refreshes(queued_tasks) == [(SUBSCRIPTION_REFRESH_TASK, ("sub_1",), None)]

    def test_an_answer_nobody_overtook_queues_nothing(self, held, queued_tasks, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            subscription_cancel(subscription=held, at_once=False)

        assert _refreshes(queued_tasks) == []
