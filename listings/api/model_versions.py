"""API for model versions: list, retrieve with thresholds and metrics, activate."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from clipmatch.inference.sources import ModelLoadError
from clipmatch.models import ModelVersion
from clipmatch.services import ModelVersionError, model_version_activate
from listings.api import idempotency
from listings.api.errors import Conflict
from listings.api.permissions import IsModeratorOrStaff
from listings.api.strict import NewestFirst, StrictQuery


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
            "is_active",
            "is_shadow",
            "activated_at",
            "created_at",
        ]
        read_only_fields = fields


class ModelVersionListView(StrictQuery, ListAPIView):
    """Every model version that has scored or been configured, newest first."""

    serializer_class = ModelVersionSerializer
    permission_classes = [IsModeratorOrStaff]
    pagination_class = NewestFirst
    queryset = ModelVersion.objects.all()


class ModelVersionDetailView(StrictQuery, RetrieveAPIView):
    """One model version with its thresholds and the metrics it shipped with."""

    serializer_class = ModelVersionSerializer
    permission_classes = [IsModeratorOrStaff]
    queryset = ModelVersion.objects.all()


class CanActivateModels(BasePermission):
    """Staff who may change model versions, as the admin's activate action asks."""

    message = "Only staff who may change model versions can activate one."

    def has_permission(self, request, view):
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and user.is_staff
            and user.has_perm("clipmatch.change_modelversion")
        )


class ModelVersionActivateView(StrictQuery, APIView):
    """Make this version the one new scores use; the catalog is rescored after."""

    permission_classes = [CanActivateModels]

    @extend_schema(
        request=None,
        responses={200: ModelVersionSerializer},
        parameters=[idempotency.PARAMETER],
        extensions={"x-extra-errors": ["409", "422"]},
    )
    @idempotency.idempotent
    def post(self, request, pk: int):
        version = get_object_or_404(ModelVersion, pk=pk)
        was_active = version.is_active
        try:
            model_version_activate(version=version, actor=request.user)
        except (ModelVersionError, ModelLoadError) as exc:
            # Already active, or its files are missing or changed: nothing changed.
            code = "already_active" if was_active else "model_files_refused"
            raise Conflict(str(exc), code=code) from exc
        version.refresh_from_db()
        return Response(ModelVersionSerializer(version).data)
