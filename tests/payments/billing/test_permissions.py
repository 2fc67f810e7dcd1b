"""`plan_required` (apps/payments/billing/permissions.py): a DRF view any app guards with a product's plans lets
a user in while one of their subscriptions to it is trialing, active or past due, and answers 403 naming the
plan otherwise.

Here on a small view of this test's own, with subscriptions stored as Stripe-shaped JSON through dj-stripe. The
same guard following a real subscription as Stripe's test clock moves it is covered in
tests/journeys/test_subscriptions.py (`test_a_view_guarded_by_plan_required_follows_the_subscription`).
"""

import pytest
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from apps.payments.billing.permissions import plan_required
from tests.payments.billing.factories import plan, subscribed
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _offline(stripe_stand_in):
    """Every request dj-stripe might make fails the test."""


def _reports_for(product_id: int):
    class Reports(APIView):
        permission_classes = (plan_required(product_id=product_id),)  # alone: it must turn strangers away itself

        def get(self, request):
            return Response({"reports": []})

    return Reports.as_view()


def _get(view, user=None):
    request = APIRequestFactory().get("/reports")
    if user is not None:
        force_authenticate(request, user=user)
    return view(request)


@pytest.mark.parametrize("status", ["trialing", "active", "past_due"])
def test_a_subscriber_whose_plan_gives_access_is_let_in(status):
    ada, pro = UserFactory(), plan("Pro")
    subscribed(ada, pro, status=status)

    assert _get(_reports_for(pro.product_id), ada).status_code == 200


@pytest.mark.parametrize("status", ["canceled", "unpaid", "incomplete_expired"])
def test_a_plan_that_ended_or_went_unpaid_is_a_403_naming_the_plan(status):
    ada, pro = UserFactory(), plan("Pro")
    subscribed(ada, pro, status=status)

    answer = _get(_reports_for(pro.product_id), ada)

    assert answer.status_code == 403
    assert answer.data["detail"] == "This needs an active subscription to Pro."


def test_a_user_without_any_plan_is_refused_and_so_is_a_plan_of_another_product():
    ada, grace, pro, team = UserFactory(), UserFactory(), plan("Pro"), plan("Team")
    subscribed(grace, team)

    assert _get(_reports_for(pro.product_id), ada).status_code == 403
    assert _get(_reports_for(pro.product_id), grace).status_code == 403


def test_a_view_guarded_by_a_product_that_does_not_exist_lets_no_one_in():
    ada, pro = UserFactory(), plan("Pro")
    subscribed(ada, pro)

    assert _get(_reports_for(999_999), ada).status_code == 403


def test_an_anonymous_caller_is_asked_to_sign_in():
    pro = plan("Pro")

    answer = _get(_reports_for(pro.product_id))

    assert answer.status_code == 401
