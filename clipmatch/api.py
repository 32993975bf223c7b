"""API for model versions: list and retrieve with their thresholds and metrics."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.pagination import CursorPagination

from clipmatch.models import ModelVersion
from listings.api.permissions import IsModeratorOrStaff


class ModelVersionSerializer(serializers.ModelSerializer):
    version = serializers.CharField(read_only=True)
    thresholds = serializers.DictField(read_only=True)
    metrics = serializers.DictField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "name",
            "version",
            "source",
            "fingerprint",
            "thresholds",
            "metrics",
            "created_at",
        ]
        read_only_fields = fields


class NewestFirst(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 20


class ModelVersionListView(ListAPIView):
    """Every model version that has scored or been configured, newest first."""

    serializer_class = ModelVersionSerializer
    permission_classes = [IsModeratorOrStaff]
    pagination_class = NewestFirst
    queryset = ModelVersion.objects.all()


class ModelVersionDetailView(RetrieveAPIView):
    """One model version with its thresholds and the metrics it shipped with."""

    serializer_class = ModelVersionSerializer
    permission_classes = [IsModeratorOrStaff]
    queryset = ModelVersion.objects.all()
