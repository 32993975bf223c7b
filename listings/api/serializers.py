"""Serializers: they check the shape of input and present output; services decide."""

from __future__ import annotations

import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clipmatch import conf
from listings.api.strict import StrictFields
from listings.models import (
    Category,
    Listing,
    ListingDecision,
    ListingImage,
    ListingScore,
)
from listings.roles import actor_as_seen_by, is_moderator
from listings.webhooks.models import WebhookDelivery, WebhookEndpoint
from listings.webhooks.payloads import PhotoReuseSerializer

# Characters that make a text read other than it is (bidi overrides and isolates
# reorder what follows), or that are no text at all (a byte order mark, the
# noncharacters): a title or description with one is refused.
MAX_ID = 2**63 - 1  # the largest BigAutoField id
HIDDEN_CHARACTERS = re.compile(
    "[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\ufeff\ufdd0-\ufdef"
    + "".join(
        f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17)
    )
    + "]"
)
PRICE = re.compile(r"[0-9]+(\.[0-9]{1,2})?")
# What RFC 3986 allows in a URI: Django's URLValidator also takes non-ASCII hosts
# and paths and stray "%", which the schema's `uri` format refuses.
URI_CHARACTERS = re.compile(
    r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+"
)


def _rfc3986(value: str) -> None:
    if not URI_CHARACTERS.fullmatch(value):
        raise serializers.ValidationError(
            "Enter the URL in ASCII, percent-encoded (an international host name "
            "in its xn-- form)."
        )


def _no_hidden_characters(value: str) -> None:
    found = HIDDEN_CHARACTERS.search(value)
    if found:
        raise serializers.ValidationError(
            f"Contains the invisible character U+{ord(found.group()):04X} (a "
            "direction override, byte order mark or noncharacter); remove it."
        )


class PriceField(serializers.DecimalField):
    """A price as written in ASCII digits: Python's Decimal also reads "1_000" and
    Arabic-Indic digits, which the schema's pattern does not allow."""

    def to_internal_value(self, data):
        if isinstance(data, str) and not PRICE.fullmatch(data):
            raise serializers.ValidationError(
                "Write the price with the digits 0-9 and at most two decimals, "
                "like 49.90."
            )
        return super().to_internal_value(data)


def _category_field(**kwargs) -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(
        slug_field="slug", queryset=Category.objects.filter(active=True), **kwargs
    )


def _images_field(**kwargs) -> serializers.ListField:
    limit = conf.get("MAX_IMAGES_PER_LISTING")
    return serializers.ListField(
        child=serializers.FileField(allow_empty_file=True),
        min_length=1,
        max_length=limit,
        help_text=(
            f"1 to {limit} photos, each at most {conf.get('MAX_IMAGE_BYTES'):,} "
            f"bytes and {conf.get('MAX_IMAGE_PIXELS'):,} pixels, of type "
            f"{', '.join(conf.get('IMAGE_FORMATS'))} (recognised by content)."
        ),
        **kwargs,
    )


class _Limited(StrictFields):
    # Text limits come from settings when the serializer is built, not at import;
    # the placeholders keep the fields in form order.
    title = serializers.CharField()
    description = serializers.CharField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        partial = kwargs.get("partial", False)
        self.fields["title"] = serializers.CharField(
            max_length=conf.get("MAX_TITLE_LENGTH"),
            required=not partial,
            validators=[_no_hidden_characters],
        )
        self.fields["description"] = serializers.CharField(
            max_length=conf.get("MAX_DESCRIPTION_LENGTH"),
            required=False,
            allow_blank=True,
            validators=[_no_hidden_characters],
        )
        self.fields["images"] = _images_field(required=not partial)


class ListingCreateSerializer(_Limited):
    category = _category_field()
    price = PriceField(max_digits=10, decimal_places=2, min_value=0)
    images = serializers.ListField()


class ListingUpdateSerializer(_Limited):
    # Every field optional; `images`, when given, replaces all the photos.

    category = _category_field(required=False)
    price = PriceField(max_digits=10, decimal_places=2, min_value=0, required=False)
    images = serializers.ListField()


class ListingFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Listing.Status.choices, required=False)
    band = serializers.ChoiceField(
        choices=ListingScore.Verdict.choices,
        required=False,
        help_text="The verdict of the listing's last score.",
    )
    category = serializers.SlugField(required=False, help_text="A category's slug.")
    updated_since = serializers.DateTimeField(required=False)


class WaitSerializer(serializers.Serializer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["wait"] = serializers.IntegerField(
            required=False,
            default=0,
            min_value=0,
            max_value=conf.get("MAX_WAIT_SECONDS"),
            help_text="Seconds to wait for the verdict before answering.",
        )


class CategoryRankSerializer(serializers.Serializer):
    category = serializers.CharField()
    similarity = serializers.FloatField()


class BandsSerializer(serializers.Serializer):
    title = serializers.CharField(required=False)
    description = serializers.CharField(required=False)


class ImageEvidenceSerializer(serializers.Serializer):
    """What the model saw in one image (1-based `index`)."""

    index = serializers.IntegerField()
    title = serializers.FloatField(help_text="Cosine similarity with the title.")
    description = serializers.FloatField(
        allow_null=True, help_text="Best window's similarity with the description."
    )
    categories = CategoryRankSerializer(many=True, help_text="The top categories.")
    listed_rank = serializers.IntegerField(allow_null=True)
    bands = BandsSerializer()
    category_ok = serializers.BooleanField()
    quality = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Photo quality findings: too_small, blurred, too_dark, "
        "too_bright, nearly_blank.",
    )
    reuse = PhotoReuseSerializer(
        required=False,
        allow_null=True,
        help_text="The same photo on another seller's listing, when it is.",
    )


class ModelVersionRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.CharField()


class ScoreSerializer(serializers.ModelSerializer):
    model_version = ModelVersionRefSerializer()
    images = ImageEvidenceSerializer(many=True)
    thresholds = serializers.DictField()
    reasons = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = ListingScore
        fields = [
            "verdict",
            "similarity",
            "reasons",
            "images",
            "thresholds",
            "audit_sample",
            "model_version",
            "computed_at",
        ]


class ListingImageSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = ListingImage
        fields = ["id", "position", "content_hash", "url"]

    def get_url(self, obj) -> str:
        request = self.context.get("request")
        url = obj.image.url
        return request.build_absolute_uri(url) if request else url


class ListingSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    seller = serializers.CharField(source="seller.username", read_only=True)
    status_label = serializers.CharField(source="get_status_display", read_only=True)
    images = ListingImageSerializer(many=True, read_only=True)
    score = ScoreSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Listing
        fields = [
            "id",
            "seller",
            "title",
            "description",
            "category",
            "price",
            "status",
            "status_label",
            "content_hash",
            "scoring_error",
            "score",
            "images",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WaitResultSerializer(serializers.Serializer):
    seconds = serializers.IntegerField(help_text="How long the answer waited, at most.")
    expired = serializers.BooleanField(
        help_text="True when the verdict did not come in time: still `pending`."
    )


class ListingCreatedSerializer(ListingSerializer):
    """A new listing, with what came of `?wait`."""

    wait = serializers.SerializerMethodField()

    class Meta(ListingSerializer.Meta):
        fields = [*ListingSerializer.Meta.fields, "wait"]
        read_only_fields = fields

    @extend_schema_field(WaitResultSerializer)
    def get_wait(self, obj) -> dict:
        return self.context["wait"]


class CategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["slug", "name"]
        read_only_fields = fields


class CheckSerializer(StrictFields):
    image = serializers.FileField(allow_empty_file=True)
    title = serializers.CharField()
    description = serializers.CharField()
    category = _category_field()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["title"] = serializers.CharField(
            max_length=conf.get("MAX_TITLE_LENGTH")
        )
        self.fields["description"] = serializers.CharField(
            max_length=conf.get("MAX_DESCRIPTION_LENGTH"),
            required=False,
            allow_blank=True,
            default="",
        )


class CheckResultSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=ListingScore.Verdict.choices)
    similarity = serializers.FloatField()
    reasons = serializers.ListField(child=serializers.CharField())
    images = ImageEvidenceSerializer(many=True)
    thresholds = serializers.DictField()
    model_version = ModelVersionRefSerializer()


class WebhookEndpointSerializer(StrictFields, serializers.ModelSerializer):
    url = serializers.URLField(max_length=500, validators=[_rfc3986])
    secret = serializers.CharField(
        write_only=True,
        min_length=16,
        max_length=200,
        help_text="Shared secret for the HMAC-SHA256 signature; never shown again.",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEndpoint.Event.choices),
        required=False,
        help_text="Events to receive; all when empty.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "secret", "events", "active", "created_at"]
        read_only_fields = ["id", "active", "created_at"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "event_id",
            "event",
            "status",
            "attempts",
            "next_attempt_at",
            "delivered_at",
            "last_error",
            "created_at",
        ]
        read_only_fields = fields


class ReviewItemSerializer(ListingSerializer):
    """A claimed queue item: the listing, why it is queued and until when it is
    yours. Decide with its `status` and `content_hash` as the expected ones."""

    claimed_until = serializers.DateTimeField(read_only=True, allow_null=True)
    queue_reason = serializers.CharField(read_only=True)

    class Meta(ListingSerializer.Meta):
        fields = [*ListingSerializer.Meta.fields, "claimed_until", "queue_reason"]
        read_only_fields = fields


class ReviewFilterSerializer(serializers.Serializer):
    category = serializers.SlugField(required=False, help_text="A category's slug.")
    band = serializers.ChoiceField(choices=ListingScore.Verdict.choices, required=False)
    reason = serializers.CharField(
        required=False, max_length=40, help_text="Why items are queued."
    )
    # Bounded by the largest id a row can have: a larger number is no id, and the
    # database cannot even compare with it (SQLite raised OverflowError, a 500).
    model_version = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID
    )


def _optional_text(help_text: str) -> serializers.CharField:
    return serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=2000,
        help_text=help_text,
    )


class DecideSerializer(StrictFields):
    action = serializers.ChoiceField(choices=["approve", "reject", "escalate"])
    expected_status = serializers.ChoiceField(
        choices=Listing.Status.choices, help_text="The status you saw."
    )
    expected_content_hash = serializers.CharField(
        max_length=64, help_text="The content_hash you saw."
    )
    reason_code = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=40,
        help_text=(
            "Required when `action` is `reject`: one of the configured reject "
            "reason codes (with `other`, a `note` too); ignored otherwise."
        ),
    )
    note = _optional_text(
        "Internal, for moderators; needed to escalate and for “other”."
    )
    message = _optional_text(
        "What the seller is told; by default the reason in its own words."
    )


class UndoSerializer(StrictFields):
    decision = serializers.IntegerField(
        min_value=1,
        help_text="The id of your decision to take back (the `id` that "
        "`decide_review_item` answered).",
    )


class ReleaseSerializer(StrictFields):
    skip = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Keep the item away from you for a while (a skip).",
    )


class ReleasedSerializer(serializers.Serializer):
    released = serializers.BooleanField()


class AppealSerializer(StrictFields):
    message = serializers.CharField(max_length=2000, help_text="Why it is wrong.")


class AppealResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    listing = serializers.IntegerField(source="listing_id")
    message = serializers.CharField()
    created_at = serializers.DateTimeField()


class DecisionSerializer(serializers.ModelSerializer):
    """One row of a listing's history. Sellers see roles, not moderators' names,
    and the message written for them; the internal note is for moderators."""

    actor = serializers.SerializerMethodField()
    message = serializers.CharField(
        source="seller_message", read_only=True, help_text="What the seller is told."
    )
    # Not read-only, only so that the schema can mark it optional: the serializer
    # is never used for input.
    note = serializers.CharField(
        source="reason",
        required=False,
        help_text="The moderators' internal note: only moderators get this field.",
    )

    class Meta:
        model = ListingDecision
        fields = [
            "id",
            "from_status",
            "to_status",
            "reason_code",
            "message",
            "note",
            "undoes",
            "actor",
            "model_version",
            "score",
            "created_at",
        ]
        read_only_fields = [name for name in fields if name != "note"]

    def get_actor(self, obj) -> str:
        return actor_as_seen_by(obj, self._viewer())

    def _viewer(self):
        request = self.context.get("request")
        return request.user if request else None

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not is_moderator(self._viewer()):
            del data["note"]
        return data
