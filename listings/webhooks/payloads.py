"""What a webhook POST carries: the body's serializers and the headers.

The dispatcher builds every payload with these serializers, and the API schema
describes the webhooks (as callbacks of `POST /api/v1/webhooks/`) with the same
ones, so what is sent and what is documented cannot drift apart.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from listings.models import Listing
from listings.roles import actor_as_seen_by
from listings.webhooks.models import WebhookEndpoint

EVENT_HEADER = "X-Clipmatch-Event"
DELIVERY_HEADER = "X-Clipmatch-Delivery"
SIGNATURE_HEADER = "X-Clipmatch-Signature"
SIGNATURE_PATTERN = r"^t=[0-9]+,v1=[0-9a-f]{64}$"
# Every header a delivery sets beyond Content-Type (application/json) and
# User-Agent: what it means and its schema, the callbacks' parameters.
HEADERS = {
    EVENT_HEADER: (
        "The event, as the body's `event`.",
        {"type": "string", "enum": WebhookEndpoint.Event.values},
    ),
    DELIVERY_HEADER: (
        "The delivery's id (the body's `id`), the same on every retry of it: "
        "deduplicate on it.",
        {"type": "string", "format": "uuid"},
    ),
    SIGNATURE_HEADER: (
        '`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + the raw body, keyed with '
        "the endpoint's secret>`. Recompute it over the raw body, compare in "
        "constant time, and refuse an old `t`.",
        {"type": "string", "pattern": SIGNATURE_PATTERN},
    ),
}


@dataclass(frozen=True)
class WebhookEvent:
    """One event about one decision, as one endpoint's owner may see it."""

    id: uuid.UUID
    event: str
    decision: object  # a ListingDecision


class WebhookListingSerializer(serializers.Serializer):
    """The listing as the decision left it."""

    id = serializers.IntegerField(source="listing_id")
    title = serializers.CharField(source="listing.title")
    status = serializers.ChoiceField(
        source="to_status",
        choices=Listing.Status.choices,
        help_text="The status the decision moved the listing to.",
    )
    seller_id = serializers.IntegerField(source="listing.seller_id")


class WebhookDecisionSerializer(serializers.Serializer):
    """The status change; a moderator's internal note is never in it."""

    id = serializers.IntegerField()
    from_status = serializers.ChoiceField(choices=Listing.Status.choices)
    to_status = serializers.ChoiceField(choices=Listing.Status.choices)
    reason_code = serializers.CharField(
        help_text="Why: `scored_pass`, `scored_review`, `scored_hold`, `approved`, "
        "`escalated`, a reject reason's code, `undo`, ..."
    )
    message = serializers.CharField(
        source="seller_message", allow_blank=True, help_text="What the seller is told."
    )
    undoes = serializers.IntegerField(
        source="undoes_id",
        allow_null=True,
        help_text="With `reason_code` `undo`: the decision taken back.",
    )
    actor = serializers.SerializerMethodField(
        help_text="`system`, `seller` or `moderator`; a moderator's own endpoint "
        "gets the moderator's user name."
    )
    model_version = serializers.CharField(allow_blank=True)
    score = serializers.FloatField(
        allow_null=True, help_text="The listing's similarity at the time."
    )

    @extend_schema_field(serializers.CharField())
    def get_actor(self, decision) -> str:
        return actor_as_seen_by(decision, self.context["viewer"])


class PhotoReuseSerializer(serializers.Serializer):
    """The same photo on another seller's listing (listings.services.photos)."""

    listing_id = serializers.IntegerField(help_text="The other seller's listing.")
    image_id = serializers.IntegerField()
    position = serializers.IntegerField()
    first_seen = serializers.DateTimeField(help_text="When that photo was stored.")
    distance = serializers.IntegerField(help_text="Perceptual hash distance, bits.")
    cosine = serializers.FloatField(help_text="Cosine of the image embeddings.")


class WebhookPhotoSerializer(serializers.Serializer):
    """One image of the listing's score: its quality findings and where it was
    reused from, if anywhere."""

    index = serializers.IntegerField(help_text="1-based, as in the listing's score.")
    quality = serializers.ListField(
        child=serializers.CharField(),
        help_text="too_small, blurred, too_dark, too_bright, nearly_blank.",
    )
    reuse = PhotoReuseSerializer(allow_null=True)


class WebhookEventSerializer(serializers.Serializer):
    """The body of every webhook POST, `listing.verdict` and `listing.decision`
    alike."""

    id = serializers.UUIDField(help_text="The delivery's id, as in the header.")
    event = serializers.ChoiceField(choices=WebhookEndpoint.Event.choices)
    created_at = serializers.DateTimeField(
        source="decision.created_at", help_text="When the decision was made."
    )
    listing = WebhookListingSerializer(source="decision")
    decision = WebhookDecisionSerializer()
    photos = serializers.SerializerMethodField(
        help_text="Per image of the listing's score: photo quality and reuse."
    )

    @extend_schema_field(WebhookPhotoSerializer(many=True))
    def get_photos(self, event) -> list[dict]:
        score = event.decision.listing.score
        rows = score.images if score is not None else []
        return WebhookPhotoSerializer(
            [
                {
                    "index": row["index"],
                    "quality": row.get("quality", []),
                    "reuse": row.get("reuse"),
                }
                for row in rows
            ],
            many=True,
        ).data


def webhook_payload(*, event: WebhookEvent, viewer) -> dict:
    """The body for an endpoint owned by `viewer`: a seller's never names a
    moderator."""
    return dict(WebhookEventSerializer(event, context={"viewer": viewer}).data)
