"""The mirror's rows over HTTP, for staff: where each object stands with Stripe, and a retry."""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.payments.gateway.throttles import STRIPE_CALL_THROTTLES
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.mirror.outbox import mirror_again
from apps.payments.mirror.selectors import mirror_record, mirror_record_list
from apps.payments.mirror.serializers import MirrorRecordSerializer
from config.api_conventions import StrictFilterSet, staff_with


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
        return mirror_record_list()

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
        mirror_again(record=record)
        record = mirror_record(record_id=record.pk)
        return Response(self.get_serializer(record).data, status=status.HTTP_202_ACCEPTED)
