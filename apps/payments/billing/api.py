"""Billing over HTTP: subscriptions (cancel, resume, change plan), the customer portal, and the two endpoints
that answer for orders and plans alike, so they live here, in the slice that may import both: a checkout
(`POST /checkout/sessions`: a cart of one-off prices becomes an order, a cart of plans a subscription) and
the stats.

Views validate, call a service or a selector, and answer. A refusal a service raises is answered by
`config.api_conventions`, the same everywhere.
"""

import django_filters
from djstripe import models as djstripe_models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.payments.billing.changes import subscription_cancel, subscription_change_plan, subscription_resume
from apps.payments.billing.checkout import subscription_checkout_for_cart
from apps.payments.billing.portal import billing_portal_url
from apps.payments.billing.selectors import (
    subscription_list,
    subscription_stats,
    subscriptions_of_email,
    subscriptions_of_product,
)
from apps.payments.billing.serializers import (
    BillingPortalInputSerializer,
    BillingPortalOutputSerializer,
    CheckoutOutputSerializer,
    StatsOutputSerializer,
    SubscriptionCancelInputSerializer,
    SubscriptionChangeInputSerializer,
    SubscriptionSerializer,
)
from apps.payments.gateway.throttles import STRIPE_CALL_THROTTLES
from apps.payments.orders.api import IDEMPOTENCY_KEY, MoneyApiView, answer_once, cart_lines
from apps.payments.orders.checkout import checkout_for_cart
from apps.payments.orders.idempotency import Answer
from apps.payments.orders.selectors import payment_stats
from apps.payments.orders.serializers import CheckoutInputSerializer, StatsInputSerializer, sells_plans
from config.api_conventions import StrictFilterSet, is_staff_with, staff_with


@extend_schema(tags=["checkout"])
class CheckoutSessionApi(MoneyApiView, APIView):
    permission_classes = (permissions.IsAuthenticated,)
    throttle_classes = STRIPE_CALL_THROTTLES

    @extend_schema(
        request=CheckoutInputSerializer, responses={201: CheckoutOutputSerializer}, parameters=[IDEMPOTENCY_KEY]
    )
    def post(self, request):
        """A Stripe Checkout Session for a cart, priced from the catalog. The same cart again within
        five minutes gets the same open session back. A cart of plans (recurring prices of one billing
        period) starts a subscription (`mode: subscription`) instead of an order."""
        serializer = CheckoutInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data

        def start() -> Answer:
            buyer = {"user": request.user, "success_url": data["success_url"], "cancel_url": data["cancel_url"]}
            if sells_plans(data["lines"]):
                checkout = subscription_checkout_for_cart(lines=cart_lines(data["lines"]), **buyer)
                body = {"mode": "subscription", "order": None, "subscription_checkout": checkout.pk}
                body.update(session_id=checkout.checkout_session_id, url=checkout.checkout_url)
                return Answer(status.HTTP_201_CREATED, body)
            order = checkout_for_cart(lines=cart_lines(data["lines"]), **buyer)
            body = {"mode": "payment", "order": order.pk, "subscription_checkout": None}
            body.update(session_id=order.checkout_session_id, url=order.checkout_url)
            return Answer(status.HTTP_201_CREATED, body)

        return answer_once(request, scope="checkout", sent=serializer.initial_data, run=start)


@extend_schema(
    tags=["payments"],
    parameters=[
        OpenApiParameter("date_from", OpenApiTypes.DATE, description="First day (default: 30 days ago)."),
        OpenApiParameter("date_to", OpenApiTypes.DATE, description="Last day (default: today)."),
        OpenApiParameter(
            "granularity", str, enum=["day", "week", "month"], description="Of the series (default: day)."
        ),
    ],
)
class PaymentStatsApi(APIView):
    permission_classes = (staff_with("payments.view_order"),)

    @extend_schema(responses=StatsOutputSerializer)
    def get(self, request):
        """Totals per currency, series of revenue, refunds and orders, success rates and the reasons cards were
        declined, for a date range: each one aggregate query; and the plans: counts by status, MRR, churn."""
        # A plain dict: DRF reads an empty form value (`?date_from=`) as "not given", which it is not.
        serializer = StatsInputSerializer(data=request.query_params.dict())
        serializer.is_valid(raise_exception=True)
        dates = {key: serializer.validated_data[key] for key in ("date_from", "date_to")}
        subscriptions = subscription_stats(**dates)
        return Response({**payment_stats(**serializer.validated_data), "subscriptions": subscriptions})


SUBSCRIPTION_STATUSES = ("trialing", "active", "past_due", "unpaid", "canceled", "incomplete", "incomplete_expired")


class SubscriptionFilter(StrictFilterSet):
    status = django_filters.ChoiceFilter(
        choices=[(value, value) for value in SUBSCRIPTION_STATUSES], field_name="stripe_data__status"
    )
    user = django_filters.NumberFilter(field_name="customer__subscriber_id", help_text="Staff: one user's.")
    email = django_filters.CharFilter(method="filter_email", help_text="Staff: the customer's address.")
    product = django_filters.NumberFilter(method="filter_product", help_text="Subscriptions to a catalog product.")

    class Meta:
        model = djstripe_models.Subscription
        fields = ("status", "user", "email", "product")

    def filter_email(self, queryset, name, value):
        return subscriptions_of_email(queryset, email=value)

    def filter_product(self, queryset, name, value):
        return subscriptions_of_product(queryset, product_id=value)


@extend_schema(tags=["subscriptions"])
class SubscriptionViewSet(MoneyApiView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The user's subscriptions (staff with `djstripe.view_subscription`: everyone's), as Stripe's events
    last told them; cancel, resume and change plan go to Stripe and answer with what it holds after."""

    permission_classes = (permissions.IsAuthenticated,)
    serializer_class = SubscriptionSerializer
    filterset_class = SubscriptionFilter
    lookup_field = "id"
    lookup_value_regex = r"sub_[A-Za-z0-9]+"
    search_fields = ("=id", "customer__email")

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return subscription_list(user=None)
        everyone = is_staff_with(self.request, "djstripe.view_subscription")
        return subscription_list(user=self.request.user, everyone=everyone)

    def _own_or_staff(self, request):
        subscription = self.get_object()
        if subscription.customer.subscriber_id != request.user.pk and not is_staff_with(
            request, "djstripe.change_subscription"
        ):
            raise exceptions.PermissionDenied("Changing another's subscription needs djstripe.change_subscription.")
        return subscription

    def _changed(self, request, scope: str, change) -> Response:
        """Answer `change()` (a service call that returns the subscription), once per `Idempotency-Key`."""

        def run() -> Answer:
            return Answer(status.HTTP_200_OK, dict(self.get_serializer(change()).data))

        sent = {"subscription": self.kwargs["id"], **request.data}
        return answer_once(request, scope=f"subscription-{scope}", sent=sent, run=run)

    @extend_schema(
        request=SubscriptionCancelInputSerializer, responses=SubscriptionSerializer, parameters=[IDEMPOTENCY_KEY]
    )
    @action(detail=True, methods=["post"], throttle_classes=STRIPE_CALL_THROTTLES)
    def cancel(self, request, id=None):
        """Cancel at the end of the paid period (access lasts until then); staff may end it at once."""
        subscription = self._own_or_staff(request)
        serializer = SubscriptionCancelInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        at_once = serializer.validated_data["at_once"]
        if at_once and not is_staff_with(request, "djstripe.change_subscription"):
            raise exceptions.PermissionDenied("Ending a subscription at once is for staff; it ends with its period.")
        return self._changed(request, "cancel", lambda: subscription_cancel(subscription=subscription, at_once=at_once))

    @extend_schema(request=None, responses=SubscriptionSerializer, parameters=[IDEMPOTENCY_KEY])
    @action(detail=True, methods=["post"], throttle_classes=STRIPE_CALL_THROTTLES)
    def resume(self, request, id=None):
        """Keep a subscription that was set to cancel at the end of its period."""
        subscription = self._own_or_staff(request)
        return self._changed(request, "resume", lambda: subscription_resume(subscription=subscription))

    @extend_schema(
        request=SubscriptionChangeInputSerializer, responses=SubscriptionSerializer, parameters=[IDEMPOTENCY_KEY]
    )
    @action(detail=True, methods=["post"], throttle_classes=STRIPE_CALL_THROTTLES)
    def change(self, request, id=None):
        """Move to another plan of the same billing period (upgrade or downgrade), prorated by Stripe: an
        upgrade is charged now, a downgrade credited on the next invoice; staff may choose otherwise."""
        subscription = self._own_or_staff(request)
        serializer = SubscriptionChangeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        proration = serializer.validated_data.get("proration")
        if proration is not None and not is_staff_with(request, "djstripe.change_subscription"):
            raise exceptions.PermissionDenied("How a plan change is prorated is for staff to choose.")
        price = serializer.validated_data["price"]
        return self._changed(
            request,
            "change",
            lambda: subscription_change_plan(subscription=subscription, price=price, proration=proration),
        )


@extend_schema(tags=["subscriptions"])
class BillingPortalApi(MoneyApiView, APIView):
    permission_classes = (permissions.IsAuthenticated,)
    throttle_classes = STRIPE_CALL_THROTTLES

    @extend_schema(request=BillingPortalInputSerializer, responses={201: BillingPortalOutputSerializer})
    def post(self, request):
        """A Stripe Billing Portal session for the user: their plans and invoices, cancel, change the card."""
        serializer = BillingPortalInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        url = billing_portal_url(user=request.user, return_url=serializer.validated_data["return_url"])
        return Response({"url": url}, status=status.HTTP_201_CREATED)
