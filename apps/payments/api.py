"""Payments over HTTP: checkout and payment links, orders and refunds, the mirror's rows, the stats.

Views validate, call a service or a selector, and answer. A refusal a service raises (an order that
cannot be canceled, Stripe out of reach) is answered by `config.api_conventions`, the same everywhere.
"""

import django_filters
from djstripe import models as djstripe_models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.payments import plans, selectors, services
from apps.payments.models import MirrorKind, MirrorRecord, MirrorState, Order, OrderStatus, Payment, PaymentStatus
from apps.payments.serializers import (
    BillingPortalInputSerializer,
    BillingPortalOutputSerializer,
    CartSerializer,
    CheckoutInputSerializer,
    CheckoutOutputSerializer,
    MirrorRecordSerializer,
    OrderDetailSerializer,
    OrderSerializer,
    PaymentIntentOutputSerializer,
    PaymentLinkOutputSerializer,
    PaymentSerializer,
    PriceCheckInputSerializer,
    PriceCheckOutputSerializer,
    RefundInputSerializer,
    RefundOutputSerializer,
    StatsInputSerializer,
    StatsOutputSerializer,
    SubscriptionCancelInputSerializer,
    SubscriptionChangeInputSerializer,
    SubscriptionSerializer,
    sells_plans,
)
from apps.payments.throttles import STRIPE_CALL_THROTTLES, asks_stripe
from config.api_conventions import CreatedBetweenFilterSet, StrictFilterSet, is_staff_with, staff_with


class MirrorRecordFilter(StrictFilterSet):
    state = django_filters.ChoiceFilter(choices=MirrorState.choices)
    kind = django_filters.ChoiceFilter(choices=MirrorKind.choices)

    class Meta:
        model = MirrorRecord
        fields = ("state", "kind")


@extend_schema(tags=["payments"])
class MirrorRecordViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = (staff_with("payments.view_mirrorrecord"),)
    serializer_class = MirrorRecordSerializer
    filterset_class = MirrorRecordFilter
    search_fields = ("stripe_id", "=object_id")
    ordering_fields = ("updated_at", "synced_at", "attempts")

    def get_queryset(self):
        return selectors.mirror_record_list()

    @extend_schema(request=None, responses={202: MirrorRecordSerializer})
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[staff_with("payments.view_mirrorrecord", "payments.change_mirrorrecord")],
        throttle_classes=STRIPE_CALL_THROTTLES,
    )
    def retry(self, request, pk=None):
        """Mirror again (a new version, so Stripe does not replay a failure it remembers)."""
        record = self.get_object()
        services.mirror_again(record=record)
        record = selectors.mirror_record(record_id=record.pk)
        return Response(self.get_serializer(record).data, status=status.HTTP_202_ACCEPTED)


# --- checkout, orders, refunds ----------------------------------------------------------------------------


def _cart(lines: list[dict]) -> list[services.CartLine]:
    return [services.CartLine(price=line["price"], quantity=line["quantity"]) for line in lines]


class MoneyApiView:
    """A view that moves money: besides its own answers it may answer 409, 502 or 503 (see
    `config.api_conventions.domain_error_answer`), and its schema says so."""

    answers_money_errors = True


def _once(request, *, scope: str, sent: dict, run, unkept=lambda body: {}) -> Response:
    """Answer `run()`, or the first answer to this user's `Idempotency-Key` for the same request; `unkept(body)`
    adds to either what must not be kept with the key (a client secret)."""
    answer = services.idempotent(
        user=request.user, scope=scope, key=request.headers.get("Idempotency-Key"), request=sent, run=run
    )
    return Response(
        {**answer.body, **unkept(answer.body)},
        status=answer.status,
        headers={"Idempotent-Replayed": "true"} if answer.replayed else {},
    )


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="The same key from the same user gets the first answer back for 24 hours; "
    "the same key with another request is a 409.",
)


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

        def start() -> services.Answer:
            where = {"user": request.user, "success_url": data["success_url"], "cancel_url": data["cancel_url"]}
            if sells_plans(data["lines"]):
                checkout = services.subscription_checkout_for_cart(lines=_cart(data["lines"]), **where)
                body = {"mode": "subscription", "order": None, "subscription_checkout": checkout.pk}
                body.update(session_id=checkout.checkout_session_id, url=checkout.checkout_url)
                return services.Answer(status.HTTP_201_CREATED, body)
            order = services.checkout_for_cart(lines=_cart(data["lines"]), **where)
            body = {"mode": "payment", "order": order.pk, "subscription_checkout": None}
            body.update(session_id=order.checkout_session_id, url=order.checkout_url)
            return services.Answer(status.HTTP_201_CREATED, body)

        return _once(request, scope="checkout", sent=serializer.initial_data, run=start)


@extend_schema(tags=["checkout"])
class PaymentLinkApi(MoneyApiView, APIView):
    permission_classes = (permissions.IsAuthenticated,)
    throttle_classes = STRIPE_CALL_THROTTLES

    @extend_schema(request=CartSerializer, responses={201: PaymentLinkOutputSerializer}, parameters=[IDEMPOTENCY_KEY])
    def post(self, request):
        """A reusable Stripe Payment Link; each payment through it becomes an order of its own."""
        serializer = CartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)

        def create() -> services.Answer:
            link = services.payment_link_create(
                lines=_cart(serializer.validated_data["lines"]), created_by=request.user
            )
            return services.Answer(status.HTTP_201_CREATED, {"payment_link_id": link.stripe_id, "url": link.url})

        return _once(request, scope="payment-link", sent=serializer.initial_data, run=create)


@extend_schema(tags=["checkout"])
class PaymentIntentApi(MoneyApiView, APIView):
    permission_classes = (permissions.IsAuthenticated,)
    throttle_classes = STRIPE_CALL_THROTTLES

    @extend_schema(request=CartSerializer, responses={201: PaymentIntentOutputSerializer}, parameters=[IDEMPOTENCY_KEY])
    def post(self, request):
        """A Stripe Payment Intent for a cart, priced from the catalog, for an app to pay with Stripe.js or a
        mobile SDK (the client secret and publishable key). The same cart again within five minutes gets the
        same intent back. The order is paid when Stripe says the intent succeeded."""
        serializer = CartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if sells_plans(serializer.validated_data["lines"]):
            raise exceptions.ValidationError({"lines": ["Plans are sold through /api/v1/checkout/sessions."]})
        made: dict[str, str] = {}

        def start() -> services.Answer:
            started = services.intent_for_cart(user=request.user, lines=_cart(serializer.validated_data["lines"]))
            made["client_secret"] = started.client_secret
            body = {
                "order": started.order.pk,
                "payment_intent": started.payment.payment_intent_id,
                "publishable_key": started.publishable_key,
                "amount": started.order.amount_total,
                "currency": started.order.currency,
                "status": started.payment.status,
            }
            return services.Answer(status.HTTP_201_CREATED, body)

        def client_secret(body: dict) -> dict:
            # Never kept with the key: a replay asks Stripe for it again.
            return {"client_secret": made.get("client_secret") or services.client_secret_of(body["payment_intent"])}

        return _once(request, scope="payment-intent", sent=serializer.initial_data, run=start, unkept=client_secret)


@extend_schema(tags=["checkout"])
class VerifyPricesApi(APIView):
    permission_classes = (permissions.IsAuthenticated,)

    @extend_schema(request=PriceCheckInputSerializer, responses=PriceCheckOutputSerializer)
    def post(self, request):
        """Check a displayed cart against the catalog: which prices differ, or are no longer on sale."""
        serializer = PriceCheckInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lines = serializer.validated_data["lines"]
        on_sale = selectors.prices_on_sale(price_ids=[line["price"] for line in lines])
        discrepancies = [
            {"price": line["price"], "expected": on_sale.get(line["price"]), "provided": line["unit_amount"]}
            for line in lines
            if on_sale.get(line["price"]) != line["unit_amount"]
        ]
        return Response({"verified": not discrepancies, "discrepancies": discrepancies})


class OrderFilter(CreatedBetweenFilterSet):
    status = django_filters.ChoiceFilter(choices=OrderStatus.choices)
    user = django_filters.NumberFilter(field_name="user_id", help_text="Staff: the orders of one user.")
    email = django_filters.CharFilter(lookup_expr="iexact", help_text="Staff: the orders written to one address.")

    class Meta:
        model = Order
        fields = ("status", "user", "email", "date_from", "date_to")


class PaymentFilter(CreatedBetweenFilterSet):
    status = django_filters.ChoiceFilter(choices=PaymentStatus.choices)
    order = django_filters.NumberFilter(field_name="order_id")
    user = django_filters.NumberFilter(field_name="order__user_id", help_text="Staff: the payments of one user.")
    decline_code = django_filters.CharFilter()

    class Meta:
        model = Payment
        fields = ("status", "order", "user", "decline_code", "date_from", "date_to")


@extend_schema(tags=["orders"])
class PaymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Each attempt to pay an order (a Checkout Session or an app's intent), as Stripe's events told it: the
    card, what went back, why a card was declined. Users see their own, staff with `payments.view_payment`
    all of them; anyone else's payment is a 404."""

    permission_classes = (permissions.IsAuthenticated,)
    serializer_class = PaymentSerializer
    filterset_class = PaymentFilter
    lookup_value_regex = r"\d+"
    ordering_fields = ("created_at", "amount")
    search_fields = ("=order__id", "=payment_intent_id", "=checkout_session_id", "order__email")

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return selectors.payment_list(user=None)
        return selectors.payment_list(
            user=self.request.user, everyone=is_staff_with(self.request, "payments.view_payment")
        )


@extend_schema(tags=["orders"])
class OrderViewSet(MoneyApiView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Users see their own orders, staff with `payments.view_order` all of them; anyone else's order is a 404."""

    permission_classes = (permissions.IsAuthenticated,)
    serializer_class = OrderSerializer
    filterset_class = OrderFilter
    ordering_fields = ("created_at", "amount_total")
    search_fields = ("=id", "email", "lines__product_name", "=payment_intent_id", "=checkout_session_id")

    def get_throttles(self):
        if self.action == "retrieve":  # a read costs nothing, unless it asks Stripe first
            # The schema is built with no query string: it must still say that `?sync=1` can be a 429.
            schema = getattr(self, "swagger_fake_view", False)
            return [throttle() for throttle in STRIPE_CALL_THROTTLES] if schema or asks_stripe(self.request) else []
        return super().get_throttles()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return selectors.order_list(user=None)
        return selectors.order_list(user=self.request.user, everyone=is_staff_with(self.request, "payments.view_order"))

    @extend_schema(
        parameters=[OpenApiParameter("sync", bool, description="Ask Stripe first (for the success page).")],
        responses=OrderDetailSerializer,
    )
    def retrieve(self, request, *args, **kwargs):
        """An order with its payments, refunds and every change of status."""
        order = self.get_object()
        if asks_stripe(request):
            order = services.order_sync(order=order, by=request.user)
        return Response(OrderDetailSerializer(selectors.order_detail(order_id=order.pk)).data)

    @extend_schema(request=None, responses=OrderSerializer)
    @action(detail=True, methods=["post"], throttle_classes=STRIPE_CALL_THROTTLES)
    def cancel(self, request, pk=None):
        """A pending order is canceled (its checkout expired in Stripe); a paid one is refunded in full,
        by its owner within ORDER_SELF_REFUND_DAYS of paying, by staff with `payments.refund_order` at any time."""
        order = self.get_object()
        if order.user_id != request.user.pk and not is_staff_with(request, "payments.change_order"):
            raise exceptions.PermissionDenied("Canceling another's order needs the permission payments.change_order.")
        order = services.order_cancel(order=order, by=request.user)
        return Response(self.get_serializer(order).data)

    @extend_schema(request=RefundInputSerializer, responses={201: RefundOutputSerializer}, parameters=[IDEMPOTENCY_KEY])
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[staff_with("payments.view_order", "payments.refund_order")],
        throttle_classes=STRIPE_CALL_THROTTLES,
    )
    def refunds(self, request, pk=None):
        """Refund all or part of a paid order (staff with `payments.refund_order`); never more than what
        remains. An Idempotency-Key is bound to its user and amount: reused with another amount it is a 409."""
        serializer = RefundInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order = self.get_object()
        amount = serializer.validated_data.get("amount")
        key = request.headers.get("Idempotency-Key")

        def refund() -> services.Answer:
            made = services.order_refund(order=order, amount=amount, by=request.user, client_key=key)
            return services.Answer(status.HTTP_201_CREATED, RefundOutputSerializer(made).data)

        return _once(request, scope=f"refund:order:{order.pk}", sent={"amount": amount}, run=refund)


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
        subscriptions = plans.subscription_stats(**dates)
        return Response({**selectors.payment_stats(**serializer.validated_data), "subscriptions": subscriptions})


# --- subscriptions -------------------------------------------------------------------------------------------

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
        return plans.subscriptions_of_email(queryset, email=value)

    def filter_product(self, queryset, name, value):
        return plans.subscriptions_of_product(queryset, product_id=value)


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
            return plans.subscription_list(user=None)
        everyone = is_staff_with(self.request, "djstripe.view_subscription")
        return plans.subscription_list(user=self.request.user, everyone=everyone)

    def _own_or_staff(self, request):
        subscription = self.get_object()
        if subscription.customer.subscriber_id != request.user.pk and not is_staff_with(
            request, "djstripe.change_subscription"
        ):
            raise exceptions.PermissionDenied("Changing another's subscription needs djstripe.change_subscription.")
        return subscription

    def _changed(self, request, scope: str, change) -> Response:
        """Answer `change()` (a service call that returns the subscription), once per `Idempotency-Key`."""

        def run() -> services.Answer:
            return services.Answer(status.HTTP_200_OK, dict(self.get_serializer(change()).data))

        sent = {"subscription": self.kwargs["id"], **request.data}
        return _once(request, scope=f"subscription-{scope}", sent=sent, run=run)

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
        return self._changed(
            request, "cancel", lambda: services.subscription_cancel(subscription=subscription, at_once=at_once)
        )

    @extend_schema(request=None, responses=SubscriptionSerializer, parameters=[IDEMPOTENCY_KEY])
    @action(detail=True, methods=["post"], throttle_classes=STRIPE_CALL_THROTTLES)
    def resume(self, request, id=None):
        """Keep a subscription that was set to cancel at the end of its period."""
        subscription = self._own_or_staff(request)
        return self._changed(request, "resume", lambda: services.subscription_resume(subscription=subscription))

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
            lambda: services.subscription_change_plan(subscription=subscription, price=price, proration=proration),
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
        url = services.billing_portal_url(user=request.user, return_url=serializer.validated_data["return_url"])
        return Response({"url": url}, status=status.HTTP_201_CREATED)
