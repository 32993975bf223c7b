"""API views: thin; serializers check the shape, selectors read, services write."""

from __future__ import annotations

import time

from django.core.exceptions import ImproperlyConfigured
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from clipmatch.engine import ModelLoadError
from clipmatch.images import UnreadableImage
from listings.api import serializers as s
from listings.api.errors import ServiceUnavailable
from listings.api.permissions import IsSeller, IsSellerOrModerator
from listings.api.uploads import read_images
from listings.models import Listing
from listings.selectors import listing_list, listing_status, listings_visible_to
from listings.services import (
    ListingNotEditable,
    listing_create,
    listing_precheck,
    listing_soft_delete,
    listing_update,
)
from listings.webhooks.models import WebhookEndpoint
from listings.webhooks.services import (
    WebhookURLRefused,
    webhook_endpoint_create,
    webhook_endpoint_deactivate,
)

WAIT_POLL_SECONDS = 0.2


class NewestFirst(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


def _wait_for_verdict(listing_id: int, seconds: int) -> None:
    """Poll the database until the worker routed the listing or time is up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if listing_status(listing_id=listing_id) != Listing.Status.PENDING:
            return
        # Autocommit: each poll is its own query and sees the worker's commit.
        time.sleep(WAIT_POLL_SECONDS)


class ListingListCreateView(ListAPIView):
    """Listings: sellers see and submit their own, moderators see all."""

    serializer_class = s.ListingSerializer
    pagination_class = NewestFirst
    parser_classes = [MultiPartParser]

    def get_permissions(self):
        if self.request.method == "POST":
            return [IsSeller()]
        return [IsSellerOrModerator()]

    def get_queryset(self):
        filters = s.ListingFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return listing_list(user=self.request.user, **filters.validated_data)

    @extend_schema(
        operation_id="v1_listings_list", parameters=[s.ListingFilterSerializer]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=s.ListingCreateSerializer,
        parameters=[s.WaitSerializer],
        responses={201: s.ListingSerializer},
        description=(
            "Create a listing with one or more photos (multipart, `images` repeated). "
            "Scoring starts after the commit; with `?wait=N` the answer waits up to "
            "N seconds for the worker's verdict (the status stays `pending` if it "
            "does not come in time)."
        ),
    )
    def post(self, request):
        wait = s.WaitSerializer(data=request.query_params)
        wait.is_valid(raise_exception=True)
        serializer = s.ListingCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        images = read_images(data["images"])
        listing = listing_create(
            seller=request.user,
            title=data["title"],
            description=data.get("description", ""),
            category=data["category"],
            price=data["price"],
            images=images,
        )
        if wait.validated_data["wait"]:
            _wait_for_verdict(listing.pk, wait.validated_data["wait"])
        listing = listings_visible_to(user=request.user).get(pk=listing.pk)
        return Response(self.get_serializer(listing).data, status=201)


class ListingDetailView(GenericAPIView):
    """One listing with its full score; its seller may change or delete it."""

    serializer_class = s.ListingSerializer
    permission_classes = [IsSellerOrModerator]
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self):
        return listings_visible_to(user=self.request.user)

    def get(self, request, pk: int):
        listing = get_object_or_404(self.get_queryset(), pk=pk)
        return Response(self.get_serializer(listing).data)

    @extend_schema(
        request=s.ListingUpdateSerializer,
        responses={200: s.ListingSerializer},
        description=(
            "Change the text, category, price or photos (`images` replaces them "
            "all). A change to what the model looks at sends the listing back to "
            "`pending` and queues a rescore."
        ),
    )
    def patch(self, request, pk: int):
        listing = get_object_or_404(self.get_queryset(), pk=pk)
        serializer = s.ListingUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        files = changes.pop("images", None)
        images = read_images(files) if files is not None else None
        try:
            listing = listing_update(
                listing=listing, actor=request.user, changes=changes, images=images
            )
        except ListingNotEditable as exc:
            raise exceptions.PermissionDenied(str(exc)) from exc
        except Listing.DoesNotExist as exc:
            raise exceptions.NotFound() from exc
        listing = self.get_queryset().get(pk=listing.pk)
        return Response(self.get_serializer(listing).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        listing = get_object_or_404(self.get_queryset(), pk=pk)
        try:
            listing_soft_delete(listing=listing, actor=request.user)
        except ListingNotEditable as exc:
            raise exceptions.PermissionDenied(str(exc)) from exc
        except Listing.DoesNotExist as exc:
            raise exceptions.NotFound() from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class CheckView(APIView):
    """Score a photo against a title (and description) without storing a listing."""

    permission_classes = [IsSellerOrModerator]
    throttle_scope = "check"
    parser_classes = [MultiPartParser]

    @extend_schema(
        request=s.CheckSerializer,
        responses={200: s.CheckResultSerializer},
        extensions={"x-extra-errors": ["503"]},
        description=(
            "A pre-publish check: the same scorer as a submitted listing, with the "
            "active model and thresholds. Nothing is stored but the embedding cache. "
            "Rate-limited per user."
        ),
    )
    def post(self, request):
        serializer = s.CheckSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        ((_, image),) = read_images([data["image"]], field="image")
        try:
            result = listing_precheck(
                title=data["title"],
                description=data.get("description", ""),
                category=data["category"],
                image=image,
            )
        except UnreadableImage as exc:  # read_images decoded it already; kept safe
            raise exceptions.ValidationError({"image": [str(exc)]}) from exc
        except (ModelLoadError, ImproperlyConfigured) as exc:
            raise ServiceUnavailable(f"The model cannot run: {exc}") from exc
        assessment = result.assessment
        body = {
            "verdict": assessment.verdict,
            "similarity": assessment.similarity,
            "reasons": assessment.reasons,
            "images": assessment.images_as_dicts(),
            "thresholds": result.active.thresholds.as_dict(),
            "model_version": result.active.version,
        }
        return Response(s.CheckResultSerializer(body).data)


class WebhookEndpointListCreateView(ListAPIView):
    """A user's webhook endpoints; they hear about the listings the user can see."""

    serializer_class = s.WebhookEndpointSerializer
    permission_classes = [IsSellerOrModerator]
    pagination_class = NewestFirst
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def get_queryset(self):
        return WebhookEndpoint.objects.filter(owner=self.request.user, active=True)

    @extend_schema(operation_id="v1_webhooks_list")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(responses={201: s.WebhookEndpointSerializer})
    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            endpoint = webhook_endpoint_create(
                owner=request.user, **serializer.validated_data
            )
        except WebhookURLRefused as exc:
            raise exceptions.ValidationError({"url": [str(exc)]}) from exc
        return Response(self.get_serializer(endpoint).data, status=201)


class WebhookEndpointDetailView(GenericAPIView):
    serializer_class = s.WebhookEndpointSerializer
    permission_classes = [IsSellerOrModerator]

    def get_queryset(self):
        return WebhookEndpoint.objects.filter(owner=self.request.user, active=True)

    def get(self, request, pk: int):
        return Response(
            self.get_serializer(get_object_or_404(self.get_queryset(), pk=pk)).data
        )

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        webhook_endpoint_deactivate(
            endpoint=get_object_or_404(self.get_queryset(), pk=pk)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveryListView(ListAPIView):
    """The deliveries of one of the user's endpoints, newest first."""

    serializer_class = s.WebhookDeliverySerializer
    permission_classes = [IsSellerOrModerator]
    pagination_class = NewestFirst

    def get_queryset(self):
        endpoint = get_object_or_404(
            WebhookEndpoint.objects.filter(owner=self.request.user),
            pk=self.kwargs["pk"],
        )
        return endpoint.deliveries.all()

    @extend_schema(operation_id="v1_webhooks_deliveries_list")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


@csrf_exempt  # it changes nothing; a CSRF page would break the error shape
def api_not_found(request, *args, **kwargs):
    """Any other path under /api/v1/: a 404 in the API's error shape, not a page."""
    return JsonResponse(
        {"code": "not_found", "message": "Not found.", "fields": {}}, status=404
    )
