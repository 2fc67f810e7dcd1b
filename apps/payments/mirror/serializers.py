"""The mirror's rows over HTTP."""

from rest_framework import serializers

from apps.payments.mirror.models import MirrorRecord


class MirrorRecordSerializer(serializers.ModelSerializer):
    app_ref = serializers.CharField(read_only=True)

    class Meta:
        model = MirrorRecord
        fields = (
            "id",
            "kind",
            "object_id",
            "app_ref",
            "state",
            "version",
            "synced_version",
            "attempts",
            "last_error",
            "stripe_id",
            "deleted",
            "synced_at",
            "updated_at",
        )
        read_only_fields = fields
