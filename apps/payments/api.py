"""`/api/v1/payments/mirror/`: staff see how far each object got to Stripe, and send failed ones again."""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.payments import mirror, selectors
from apps.payments.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.serializers import MirrorRecordSerializer


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
