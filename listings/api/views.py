"""API views: thin; serializers check the shape, selectors read, services write."""

from __future__ import annotations

import time

from django.core.exceptions import ImproperlyConfigured
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import (
    OpenApiCallback,
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import exceptions, status
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from clipmatch.inference.images import UnreadableImage
from clipmatch.inference.sources import ModelLoadError
from listings.api import idempotency
from listings.api import serializers as s
from listings.api.errors import Conflict, ServiceUnavailable
from listings.api.permissions import IsModerator, IsSeller, IsSellerOrModerator
from listings.api.strict import NewestFirst, StrictQuery
from listings.api.uploads import read_images
from listings.models import Category, Listing
from listings.selectors import (
    listing_history,
    listing_list,
    listing_status,
    listings_visible_to,
)
from listings.services.exceptions import (
    AppealNotAllowed,
    ClaimLost,
    DecisionNotAllowed,
    ListingNotEditable,
    TransitionNotAllowed,
)
from listings.services.lifecycle import (
    listing_create,
    listing_precheck,
    listing_soft_delete,
    listing_update,
)
from listings.services.review import (
    ReviewFilters,
    listing_appeal,
    review_claim,
    review_claim_next,
    review_decide,
    review_release,
    review_undo,
)
from listings.webhooks.models import WebhookEndpoint
from listings.webhooks.payloads import WebhookEventSerializer
from listings.webhooks.services import (
    WebhookEndpointLimit,
    WebhookURLRefused,
    webhook_endpoint_create,
    webhook_endpoint_deactivate,
)

WAIT_POLL_SECONDS = 0.2


def query_of(request) -> dict:
    """The query string as a plain dict: DRF treats a QueryDict as form input, where
    an empty optional value counts as absent, so `?updated_since=` was accepted
    although the schema (a date-time) refuses it."""
    return request.query_params.dict()


def _wait_for_verdict(listing_id: int, seconds: int) -> None:
    """Poll the database until the worker routed the listing or time is up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if listing_status(listing_id=listing_id) != Listing.Status.PENDING:
            return
        # Autocommit: each poll is its own query and sees the worker's commit.
        time.sleep(WAIT_POLL_SECONDS)


class ListingListCreateView(StrictQuery, ListAPIView):
    """Listings: sellers see and submit their own, moderators see all."""

    serializer_class = s.ListingSerializer
    pagination_class = NewestFirst
    parser_classes = [MultiPartParser]
    query_serializers = {
        "get": (s.ListingFilterSerializer,),
        "post": (s.WaitSerializer,),
    }

    def get_permissions(self):
        if self.request.method == "POST":
            return [IsSeller()]
        return [IsSellerOrModerator()]

    def get_queryset(self):
        filters = s.ListingFilterSerializer(data=query_of(self.request))
        filters.is_valid(raise_exception=True)
        return listing_list(user=self.request.user, **filters.validated_data)

    @extend_schema(parameters=[s.ListingFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=s.ListingCreateSerializer,
        parameters=[s.WaitSerializer, idempotency.PARAMETER],
        responses={201: s.ListingCreatedSerializer},
        extensions={"x-extra-errors": ["409", "422"]},
        description=(
            "Create a listing with one or more photos (multipart, `images` repeated). "
            "Scoring starts after the commit; with `?wait=N` the answer waits up to "
            "N seconds for the worker's verdict: `wait.expired` says whether it ran "
            "out (the status is then still `pending`). `Location` names the new "
            "listing."
        ),
    )
    @idempotency.idempotent
    def post(self, request):
        wait = s.WaitSerializer(data=query_of(request))
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
        seconds = wait.validated_data["wait"]
        if seconds:
            _wait_for_verdict(listing.pk, seconds)
        listing = listings_visible_to(user=request.user).get(pk=listing.pk)
        wait_result = {
            "seconds": seconds,
            "expired": bool(seconds) and listing.status == Listing.Status.PENDING,
        }
        body = s.ListingCreatedSerializer(
            listing, context={**self.get_serializer_context(), "wait": wait_result}
        ).data
        return Response(
            body,
            status=201,
            headers={"Location": reverse("v1:listing-detail", args=[listing.pk])},
        )


class ListingDetailView(StrictQuery, GenericAPIView):
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
        if listing.seller_id != request.user.pk:
            # Refused before the body is read (the service refuses it too).
            raise exceptions.PermissionDenied(
                "Only the listing's seller can change it."
            )
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


class CheckView(StrictQuery, APIView):
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
            "thresholds": result.active.thresholds_for(data["category"].name).as_dict(),
            "model_version": result.active.version,
        }
        return Response(s.CheckResultSerializer(body).data)


WEBHOOK_EVENTS = {
    WebhookEndpoint.Event.VERDICT.value: (
        "The model routed a listing: passed, review or held (also after a rescore)."
    ),
    WebhookEndpoint.Event.DECISION.value: (
        "A moderator approved, rejected or escalated a listing, once the undo "
        "window closed; or took a decision back that had been sent."
    ),
}
WEBHOOK_HEADERS_NOTE = (
    "Each POST carries `X-Clipmatch-Event`, `X-Clipmatch-Delivery` (deduplicate on "
    "it) and `X-Clipmatch-Signature` (verify it), described as its parameters."
)


class WebhookEndpointListCreateView(StrictQuery, ListAPIView):
    """A user's webhook endpoints; they hear about the listings the user can see."""

    serializer_class = s.WebhookEndpointSerializer
    permission_classes = [IsSellerOrModerator]
    pagination_class = NewestFirst
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def get_queryset(self):
        return WebhookEndpoint.objects.filter(owner=self.request.user, active=True)

    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        responses={201: s.WebhookEndpointSerializer},
        parameters=[idempotency.PARAMETER],
        extensions={"x-extra-errors": ["409", "422"]},
        description=(
            "Register a URL that receives the events below (its callbacks), "
            "signed with `secret`: `listing.verdict` when the model routes a "
            "listing, `listing.decision` when a person decides (sent once the "
            "decision's undo window has closed; a decision taken back in time is "
            "not sent, nor is its undo)."
        ),
        callbacks=[
            OpenApiCallback(
                event,
                "{$request.body#/url}",
                extend_schema(
                    request=WebhookEventSerializer,
                    responses={
                        200: OpenApiResponse(
                            description="Any 2xx: delivered. Anything else, or no "
                            "answer within CLIPMATCH_WEBHOOK_TIMEOUT, is retried "
                            "with back-off; redirects are not followed."
                        )
                    },
                    summary=summary,
                    description=f"`event` is `{event}`. {WEBHOOK_HEADERS_NOTE}",
                ),
            )
            for event, summary in WEBHOOK_EVENTS.items()
        ],
    )
    @idempotency.idempotent
    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            endpoint = webhook_endpoint_create(
                owner=request.user, **serializer.validated_data
            )
        except WebhookURLRefused as exc:
            raise exceptions.ValidationError({"url": [str(exc)]}) from exc
        except WebhookEndpointLimit as exc:
            raise Conflict(str(exc), code="too_many_endpoints") from exc
        return Response(
            self.get_serializer(endpoint).data,
            status=201,
            headers={"Location": reverse("v1:webhook-detail", args=[endpoint.pk])},
        )


class WebhookEndpointDetailView(StrictQuery, GenericAPIView):
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


class WebhookDeliveryListView(StrictQuery, ListAPIView):
    """The deliveries of one of the user's endpoints, newest first."""

    serializer_class = s.WebhookDeliverySerializer
    permission_classes = [IsSellerOrModerator]
    pagination_class = NewestFirst

    def get_queryset(self):
        # A deleted (deactivated) endpoint is gone for its owner, its deliveries too.
        endpoint = get_object_or_404(
            WebhookEndpoint.objects.filter(owner=self.request.user, active=True),
            pk=self.kwargs["pk"],
        )
        return endpoint.deliveries.all()

    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class ListingDecisionListView(StrictQuery, ListAPIView):
    """A listing's history, oldest first: every status change, who and why. A
    seller does not see a decision its moderator took back, nor the undo."""

    serializer_class = s.DecisionSerializer
    permission_classes = [IsSellerOrModerator]
    pagination_class = None

    def get_queryset(self):
        listing = get_object_or_404(
            listings_visible_to(user=self.request.user), pk=self.kwargs["pk"]
        )
        return listing_history(listing=listing, viewer=self.request.user)

    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class ListingAppealView(StrictQuery, APIView):
    """The seller contests the last rejection, once."""

    permission_classes = [IsSeller]
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=s.AppealSerializer,
        responses={201: s.AppealResultSerializer},
        parameters=[idempotency.PARAMETER],
        extensions={"x-extra-errors": ["409", "422"]},
    )
    @idempotency.idempotent
    def post(self, request, pk: int):
        serializer = s.AppealSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        get_object_or_404(listings_visible_to(user=request.user), pk=pk)
        try:
            appeal = listing_appeal(
                listing_id=pk,
                seller=request.user,
                message=serializer.validated_data["message"],
            )
        except Listing.DoesNotExist as exc:
            raise exceptions.NotFound() from exc
        except AppealNotAllowed as exc:
            raise Conflict(str(exc), code=exc.code) from exc
        return Response(
            s.AppealResultSerializer(appeal).data,
            status=201,
            headers={"Location": reverse("v1:listing-decisions", args=[pk])},
        )


class CategoryListView(StrictQuery, ListAPIView):
    """The categories a listing's `category` takes, by slug."""

    serializer_class = s.CategorySerializer
    permission_classes = [IsSellerOrModerator]
    pagination_class = None

    def get_queryset(self):
        return Category.objects.filter(active=True).order_by("name")


def _review_item(listing_id: int) -> Listing:
    return (
        Listing.objects.select_related(
            "category", "seller", "score", "score__model_version"
        )
        .prefetch_related("images")
        .get(pk=listing_id)
    )


class ReviewNextView(StrictQuery, APIView):
    """Claim the most urgent item of the queue (or get back the one you hold)."""

    permission_classes = [IsModerator]
    query_serializers = {"post": (s.ReviewFilterSerializer,)}
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=None,
        parameters=[s.ReviewFilterSerializer],
        responses={200: s.ReviewItemSerializer, 204: None},
    )
    def post(self, request):
        query = s.ReviewFilterSerializer(data=query_of(request))
        query.is_valid(raise_exception=True)
        data = dict(query.validated_data)
        if "category" in data:
            data["category"] = (
                Category.objects.filter(slug=data["category"])
                .values_list("pk", flat=True)
                .first()
                or 0
            )
        try:
            listing = review_claim_next(
                moderator=request.user, filters=ReviewFilters(**data)
            )
        except DecisionNotAllowed as exc:
            raise exceptions.PermissionDenied(str(exc)) from exc
        if listing is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(
            s.ReviewItemSerializer(
                _review_item(listing.pk), context={"request": request}
            ).data
        )


class ReviewClaimView(StrictQuery, APIView):
    """Claim one queue item (or renew your claim on it)."""

    permission_classes = [IsModerator]
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=None,
        responses={200: s.ReviewItemSerializer},
        extensions={"x-extra-errors": ["409"]},
    )
    def post(self, request, pk: int):
        get_object_or_404(listings_visible_to(user=request.user), pk=pk)
        try:
            review_claim(listing_id=pk, moderator=request.user)
        except ClaimLost as exc:
            raise Conflict(str(exc), code=exc.code) from exc
        return Response(
            s.ReviewItemSerializer(_review_item(pk), context={"request": request}).data
        )


class ReviewDecideView(StrictQuery, APIView):
    """Approve, reject (with a reason) or escalate what you saw; a decision on a
    view that is no longer true (changed, decided, claimed by another) is a 409."""

    permission_classes = [IsModerator]
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=s.DecideSerializer,
        responses={200: s.DecisionSerializer},
        parameters=[idempotency.PARAMETER],
        extensions={"x-extra-errors": ["409", "422"]},
        examples=[
            OpenApiExample(
                "Reject with a note and a message",
                request_only=True,
                value={
                    "action": "reject",
                    "expected_status": "review",
                    "expected_content_hash": "9f2c…",
                    "reason_code": "wrong_image",
                    "note": "Same photo as listing 12.",
                    "message": "The photo shows another product.",
                },
            )
        ],
    )
    @idempotency.idempotent
    def post(self, request, pk: int):
        serializer = s.DecideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        get_object_or_404(listings_visible_to(user=request.user), pk=pk)
        try:
            decision = review_decide(
                listing_id=pk, moderator=request.user, **serializer.validated_data
            )
        except DecisionNotAllowed as exc:
            raise exceptions.PermissionDenied(str(exc)) from exc
        except TransitionNotAllowed as exc:  # StaleDecision included
            raise Conflict(str(exc), code=exc.code) from exc
        except ValueError as exc:
            raise exceptions.ValidationError({"reason_code": [str(exc)]}) from exc
        return Response(
            s.DecisionSerializer(decision, context={"request": request}).data
        )


class ReviewUndoView(StrictQuery, APIView):
    """Take back your own decision on a listing while its undo window is open,
    through the same service as the review pages' undo."""

    permission_classes = [IsModerator]
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=s.UndoSerializer,
        responses={200: s.DecisionSerializer},
        parameters=[idempotency.PARAMETER],
        extensions={
            "x-extra-errors": ["409", "422"],
            "x-error-examples": {
                "409": {
                    "nothing_to_undo": "There is no decision of yours to undo.",
                    "undo_window_closed": (
                        "Too late to undo: the window closed 30 seconds after "
                        "the decision."
                    ),
                    "listing_moved_on": (
                        "Too late to undo: the listing has moved on since that "
                        "decision."
                    ),
                    "listing_gone": "Too late to undo: the listing is gone.",
                }
            },
        },
        description=(
            "Writes a decision of its own (`reason_code` `undo`, `undoes` the "
            "decision taken back) that puts the listing back where it waited, "
            "claimed by you. Allowed for CLIPMATCH_REVIEW_UNDO_SECONDS (30 s by "
            "default) after the decision, while it is the listing's last. 409 "
            "codes: `nothing_to_undo` (not your decision, not one of this listing, "
            "or not an approval, rejection or escalation), `undo_window_closed`, "
            "`listing_moved_on` (anything happened to the listing since), "
            "`listing_gone`. The decision's webhook, still waiting for the window "
            "to close, is not sent."
        ),
        examples=[
            OpenApiExample(
                "Take back a rejection",
                request_only=True,
                value={"decision": 812},
            ),
            OpenApiExample(
                "The undo",
                response_only=True,
                status_codes=["200"],
                value={
                    "id": 813,
                    "from_status": "rejected",
                    "to_status": "review",
                    "reason_code": "undo",
                    "message": (
                        "A moderator took the last decision back; the listing is "
                        "in review again."
                    ),
                    "note": "Took back wrong_image (decision 812).",
                    "undoes": 812,
                    "actor": "mo",
                    "model_version": "clipmatch-mini@3f2a9c0d1e4b",
                    "score": 0.25,
                    "created_at": "2026-01-12T09:30:05Z",
                },
            ),
        ],
    )
    @idempotency.idempotent
    def post(self, request, pk: int):
        serializer = s.UndoSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        get_object_or_404(listings_visible_to(user=request.user), pk=pk)
        try:
            undo = review_undo(
                decision_id=serializer.validated_data["decision"],
                moderator=request.user,
                listing_id=pk,
            )
        except TransitionNotAllowed as exc:
            raise Conflict(str(exc), code=exc.code) from exc
        return Response(s.DecisionSerializer(undo, context={"request": request}).data)


class ReviewReleaseView(StrictQuery, APIView):
    """Give a claimed item back to the queue."""

    permission_classes = [IsModerator]
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(request=s.ReleaseSerializer, responses={200: s.ReleasedSerializer})
    def post(self, request, pk: int):
        serializer = s.ReleaseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        get_object_or_404(listings_visible_to(user=request.user), pk=pk)
        released = review_release(
            listing_id=pk,
            moderator=request.user,
            skipped=serializer.validated_data["skip"],
        )
        return Response({"released": released})


@csrf_exempt  # it changes nothing; a CSRF page would break the error shape
def api_not_found(request, *args, **kwargs):
    """Any other path under /api/v1/: a 404 in the API's error shape, not a page."""
    return JsonResponse(
        {"code": "not_found", "message": "Not found.", "fields": {}}, status=404
    )
