"""Orders over HTTP: payment links, payment intents, orders and their refunds, payments, the price check.

Views validate, call a service or a selector, and answer. A refusal a service raises (an order that
cannot be canceled, Stripe out of reach) is answered by `config.api_conventions`, the same everywhere.
"""

import django_filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.payments.gateway.throttles import STRIPE_CALL_THROTTLES, asks_stripe
from apps.payments.orders.checkout import payment_link_create
from apps.payments.orders.idempotency import Answer, idempotent
from apps.payments.orders.intents import client_secret_of, intent_for_cart
from apps.payments.orders.lifecycle import CartLine
from apps.payments.orders.models import Order, OrderStatus, Payment, PaymentStatus
from apps.payments.orders.refunds import order_refund
from apps.payments.orders.selectors import order_detail, order_list, payment_list, prices_on_sale
from apps.payments.orders.serializers import (
    CartSerializer,
    OrderDetailSerializer,
    OrderSerializer,
    PaymentIntentOutputSerializer,
    PaymentLinkOutputSerializer,
    PaymentSerializer,
    PriceCheckInputSerializer,
    PriceCheckOutputSerializer,
    RefundInputSerializer,
    RefundOutputSerializer,
    sells_plans,
)
from apps.payments.orders.sessions import order_cancel, order_sync
from config.api_conventions import BoundedPageNumberPagination, CreatedBetweenFilterSet, is_staff_with, staff_with


def cart_lines(lines: list[dict]) -> list[CartLine]:
    """The validated lines of a cart, as the services take them."""
    return [CartLine(price=line["price"], quantity=line["quantity"]) for line in lines]


class MoneyApiView:
    """A view that moves money: besides its own answers it may answer 409, 502 or 503 (see
    `config.api_conventions.domain_error_answer`), and its schema says so."""

    answers_money_errors = True


def answer_once(request, *, scope: str, sent: dict, run, never_stored=lambda body: {}) -> Response:
    """Answer `run()`, or the first answer to this user's `Idempotency-Key` for the same request;
    `never_stored(body)` adds to either what must not be kept with the key (a client secret)."""
    answer = idempotent(
        user=request.user, scope=scope, key=request.headers.get("Idempotency-Key"), request=sent, run=run
    )
    return Response(
        {**answer.body, **never_stored(answer.body)},
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
class PaymentLinkApi(MoneyApiView, APIView):
    permission_classes = (permissions.IsAuthenticated,)
    throttle_classes = STRIPE_CALL_THROTTLES

    @extend_schema(request=CartSerializer, responses={201: PaymentLinkOutputSerializer}, parameters=[IDEMPOTENCY_KEY])
    def post(self, request):
        """A reusable Stripe Payment Link; each payment through it becomes an order of its own."""
        serializer = CartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)

        def create() -> Answer:
            link = payment_link_create(lines=cart_lines(serializer.validated_data["lines"]), created_by=request.user)
            return Answer(status.HTTP_201_CREATED, {"payment_link_id": link.stripe_id, "url": link.url})

        return answer_once(request, scope="payment-link", sent=serializer.initial_data, run=create)


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
        created: dict[str, str] = {}

        def start() -> Answer:
            started = intent_for_cart(user=request.user, lines=cart_lines(serializer.validated_data["lines"]))
            created["client_secret"] = started.client_secret
            body = {
                "order": started.order.pk,
                "payment_intent": started.payment.payment_intent_id,
                "publishable_key": started.publishable_key,
                "amount": started.order.amount_total,
                "currency": started.order.currency,
                "status": started.payment.status,
            }
            return Answer(status.HTTP_201_CREATED, body)

        def client_secret(body: dict) -> dict:
            # Never kept with the key: a replay asks Stripe for it again.
            return {"client_secret": created.get("client_secret") or client_secret_of(body["payment_intent"])}

        return answer_once(
            request, scope="payment-intent", sent=serializer.initial_data, run=start, never_stored=client_secret
        )


@extend_schema(tags=["checkout"])
class VerifyPricesApi(APIView):
    permission_classes = (permissions.IsAuthenticated,)

    @extend_schema(request=PriceCheckInputSerializer, responses=PriceCheckOutputSerializer)
    def post(self, request):
        """Check a displayed cart against the catalog: which prices differ, or are no longer on sale."""
        serializer = PriceCheckInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lines = serializer.validated_data["lines"]
        on_sale = prices_on_sale(price_ids=[line["price"] for line in lines])
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
    pagination_class = BoundedPageNumberPagination
    lookup_value_regex = r"\d+"
    ordering_fields = ("created_at", "amount")
    search_fields = ("=order__id", "=payment_intent_id", "=checkout_session_id", "order__email")

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return payment_list(user=None)
        return payment_list(user=self.request.user, everyone=is_staff_with(self.request, "payments.view_payment"))


@extend_schema(tags=["orders"])
class OrderViewSet(MoneyApiView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Users see their own orders, staff with `payments.view_order` all of them; anyone else's order is a 404."""

    permission_classes = (permissions.IsAuthenticated,)
    serializer_class = OrderSerializer
    filterset_class = OrderFilter
    pagination_class = BoundedPageNumberPagination
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
            return order_list(user=None)
        return order_list(user=self.request.user, everyone=is_staff_with(self.request, "payments.view_order"))

    @extend_schema(
        parameters=[OpenApiParameter("sync", bool, description="Ask Stripe first (for the success page).")],
        responses=OrderDetailSerializer,
    )
    def retrieve(self, request, *args, **kwargs):
        """An order with its payments, refunds and every change of status."""
        order = self.get_object()
        if asks_stripe(request):
            order = order_sync(order=order, by=request.user)
        return Response(OrderDetailSerializer(order_detail(order_id=order.pk)).data)

    @extend_schema(request=None, responses=OrderSerializer)
    @action(detail=True, methods=["post"], throttle_classes=STRIPE_CALL_THROTTLES)
    def cancel(self, request, pk=None):
        """A pending order is canceled (its checkout expired in Stripe); a paid one is refunded in full,
        by its owner within ORDER_SELF_REFUND_DAYS of paying, by staff with `payments.refund_order` at any time."""
        order = self.get_object()
        if order.user_id != request.user.pk and not is_staff_with(request, "payments.change_order"):
            raise exceptions.PermissionDenied("Canceling another's order needs the permission payments.change_order.")
        order = order_cancel(order=order, by=request.user)
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

        def refund() -> Answer:
            made = order_refund(order=order, amount=amount, by=request.user, client_key=key)
            return Answer(status.HTTP_201_CREATED, RefundOutputSerializer(made).data)

        return answer_once(request, scope=f"refund:order:{order.pk}", sent={"amount": amount}, run=refund)
