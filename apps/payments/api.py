"""`/api/v1/payments/mirror/`: staff see how far each object got to Stripe, and send failed ones again."""

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.catalog.models import Price
from apps.payments import checkout, mirror, orders, selectors
from apps.payments.models import MirrorKind, MirrorRecord, MirrorState, Order, OrderStatus
from apps.payments.serializers import (
    CartSerializer,
    CheckoutInputSerializer,
    CheckoutOutputSerializer,
    MirrorRecordSerializer,
    OrderSerializer,
    PaymentLinkOutputSerializer,
    PriceCheckInputSerializer,
    PriceCheckOutputSerializer,
    RefundInputSerializer,
    RefundOutputSerializer,
    StatsInputSerializer,
    StatsOutputSerializer,
)
from apps.payments.stripe_client import StripeUnavailable


class MirrorRecordFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=MirrorState.choices)
    kind = django_filters.ChoiceFilter(choices=MirrorKind.choices)

    class Meta:
        model = MirrorRecord
        fields = ("state", "kind")


@extend_schema(tags=["payments"])
class MirrorRecordViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = (permissions.IsAdminUser,)
    serializer_class = MirrorRecordSerializer
    filterset_class = MirrorRecordFilter
    search_fields = ("stripe_id", "=object_id")
    ordering_fields = ("updated_at", "synced_at", "attempts")

    def get_queryset(self):
        return selectors.mirror_record_list()

    @extend_schema(request=None, responses={202: MirrorRecordSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Mirror again (a new version, so Stripe does not replay a failure it remembers)."""
        record = self.get_object()
        mirror.mirror_again(record=record)
        record.refresh_from_db()
        return Response(self.get_serializer(record).data, status=status.HTTP_202_ACCEPTED)


# --- checkout, orders, refunds ----------------------------------------------------------------------------


def _cart(lines: list[dict]) -> list[orders.CartLine]:
    return [orders.CartLine(price=line["price"], quantity=line["quantity"]) for line in lines]


def _unavailable(error: Exception) -> Response:
    return Response(
        {"detail": f"The payment provider cannot be reached; nothing was charged. Try again shortly. ({error})"},
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
    )


@extend_schema(tags=["checkout"])
class CheckoutSessionApi(APIView):
    permission_classes = (permissions.IsAuthenticated,)

    @extend_schema(request=CheckoutInputSerializer, responses={201: CheckoutOutputSerializer})
    def post(self, request):
        """A Stripe Checkout Session for a cart, priced from the catalog."""
        serializer = CheckoutInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        order = orders.order_create(user=request.user, lines=_cart(data["lines"]))
        try:
            order = checkout.checkout_start(order=order, success_url=data["success_url"], cancel_url=data["cancel_url"])
        except checkout.CheckoutUnavailable as error:
            return _unavailable(error)
        body = {"order": order.pk, "session_id": order.checkout_session_id, "url": order.checkout_url}
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(tags=["checkout"])
class PaymentLinkApi(APIView):
    permission_classes = (permissions.IsAuthenticated,)

    @extend_schema(request=CartSerializer, responses={201: PaymentLinkOutputSerializer})
    def post(self, request):
        """A reusable Stripe Payment Link; each payment through it becomes an order of its own."""
        serializer = CartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            link = checkout.payment_link_create(
                lines=_cart(serializer.validated_data["lines"]), created_by=request.user
            )
        except checkout.CheckoutUnavailable as error:
            return _unavailable(error)
        return Response(link, status=status.HTTP_201_CREATED)


@extend_schema(tags=["checkout"])
class VerifyPricesApi(APIView):
    permission_classes = (permissions.IsAuthenticated,)

    @extend_schema(request=PriceCheckInputSerializer, responses=PriceCheckOutputSerializer)
    def post(self, request):
        """Check a displayed cart against the catalog: which prices differ, or are no longer on sale."""
        serializer = PriceCheckInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lines = serializer.validated_data["lines"]
        on_sale = {
            price.pk: price.unit_amount
            for price in Price.objects.filter(
                pk__in=[line["price"] for line in lines], active=True, product__active=True
            )
        }
        discrepancies = [
            {"price": line["price"], "expected": on_sale.get(line["price"]), "provided": line["unit_amount"]}
            for line in lines
            if on_sale.get(line["price"]) != line["unit_amount"]
        ]
        return Response({"verified": not discrepancies, "discrepancies": discrepancies})


class OrderFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=OrderStatus.choices)

    class Meta:
        model = Order
        fields = ("status",)


@extend_schema(tags=["orders"])
class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Users see their own orders, staff all of them; anyone else's order is a 404."""

    permission_classes = (permissions.IsAuthenticated,)
    serializer_class = OrderSerializer
    filterset_class = OrderFilter
    ordering_fields = ("created_at", "amount_total")

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Order.objects.none()
        found = Order.objects.prefetch_related("lines")
        return found if self.request.user.is_staff else found.filter(user=self.request.user)

    @extend_schema(parameters=[OpenApiParameter("sync", bool, description="Ask Stripe first (for the success page).")])
    def retrieve(self, request, *args, **kwargs):
        order = self.get_object()
        if request.query_params.get("sync") in ("1", "true"):
            try:
                order = orders.order_sync(order=order, by=request.user)
            except StripeUnavailable as error:
                return _unavailable(error)
        return Response(self.get_serializer(order).data)

    @extend_schema(request=None, responses=OrderSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """A pending order is canceled (its checkout expired in Stripe); a paid one is refunded in full."""
        try:
            order = orders.order_cancel(order=self.get_object(), by=request.user)
        except orders.OrderActionRefused as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        except StripeUnavailable as error:
            return _unavailable(error)
        return Response(self.get_serializer(order).data)

    @extend_schema(request=RefundInputSerializer, responses={201: RefundOutputSerializer})
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAdminUser])
    def refunds(self, request, pk=None):
        """Refund all or part of a paid order (staff); never more than what remains."""
        serializer = RefundInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            refund = orders.order_refund(
                order=self.get_object(),
                amount=serializer.validated_data.get("amount"),
                by=request.user,
                client_key=request.headers.get("Idempotency-Key"),
            )
        except orders.OrderActionRefused as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        except StripeUnavailable as error:
            return _unavailable(error)
        return Response(RefundOutputSerializer(refund).data, status=status.HTTP_201_CREATED)


@extend_schema(
    tags=["payments"],
    parameters=[
        OpenApiParameter("date_from", OpenApiTypes.DATE, description="First day (default: 30 days ago)."),
        OpenApiParameter("date_to", OpenApiTypes.DATE, description="Last day (default: today)."),
    ],
)
class PaymentStatsApi(APIView):
    permission_classes = (permissions.IsAdminUser,)

    @extend_schema(responses=StatsOutputSerializer)
    def get(self, request):
        """Orders by status, the success rate, and revenue per day, per currency, for a date range."""
        serializer = StatsInputSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        return Response(selectors.payment_stats(**serializer.validated_data))
