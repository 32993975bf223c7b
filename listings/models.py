"""Listings, images, scores, scoring attempts and the append-only decision log."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MinValueValidator
from django.db import models

from clipmatch.images import validate_image_file
from clipmatch.inference.images import FORMAT_EXTENSIONS, sniff_format
from clipmatch.models import ModelVersion, ThresholdVersion


class Category(models.Model):
    """A marketplace category; its name is also the zero-shot label CLIP is asked."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Listing(models.Model):
    """A seller's product listing; its status changes only through services."""

    class Status(models.TextChoices):
        PENDING = "pending", "Awaiting check"
        PASSED = "passed", "Passed"
        REVIEW = "review", "Needs review"
        HELD = "held", "Held"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        ESCALATED = "escalated", "Escalated to a senior"
        APPEALED = "appealed", "Appealed by the seller"

    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="listings"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(max_length=5000, blank=True)
    category = models.ForeignKey(Category, on_delete=models.PROTECT)
    price = models.DecimalField(
        max_digits=10, decimal_places=2, validators=[MinValueValidator(0)]
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    # Hash of what was last sent for scoring: title, description, category, images.
    content_hash = models.CharField(max_length=64, blank=True, editable=False)
    scoring_queued_at = models.DateTimeField(null=True, blank=True, editable=False)
    scoring_error = models.TextField(blank=True, editable=False)
    score = models.ForeignKey(
        "ListingScore",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        help_text="The score that routed the listing last.",
    )
    # The review queue: who holds the item and until when, and its place in line.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    queued_for_review_at = models.DateTimeField(null=True, blank=True, editable=False)
    queue_reason = models.CharField(max_length=40, blank=True, editable=False)
    review_priority = models.FloatField(
        default=0.0,
        editable=False,
        help_text="Queue order: ln(expected harm) - entry time / aging period.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Deleted by its seller: hidden from the API, kept with its history for the audit.
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    # Written only by services, naming them in update_fields: a stale instance saved
    # from a form or a shell can never revert a status or a scoring record.
    SERVICE_FIELDS = frozenset(
        {
            "status",
            "content_hash",
            "scoring_queued_at",
            "scoring_error",
            "score",
            "claimed_by",
            "claimed_until",
            "queued_for_review_at",
            "queue_reason",
            "review_priority",
            "deleted_at",
        }
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "scoring_queued_at"]),
            models.Index(fields=["status", "-review_priority"]),
        ]
        permissions = [
            ("moderate_listing", "Can work the review queue and decide listings"),
            ("decide_escalated", "Can decide listings escalated to a senior"),
        ]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs):
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in self.SERVICE_FIELDS
            ]
        super().save(*args, **kwargs)


def _image_path(instance: ListingImage, filename: str) -> str:
    # Never the uploader's name or extension: a file called x.html must not be
    # served as a page. The name comes from the bytes and their decoded format.
    extension = FORMAT_EXTENSIONS.get(instance.detected_format, ".bin")
    return f"listings/{instance.listing_id}/{instance.content_hash[:32]}{extension}"


class ListingImage(models.Model):
    """One photo of a listing; its content hash keys the embedding cache."""

    listing = models.ForeignKey(
        Listing, on_delete=models.CASCADE, related_name="images"
    )
    image = models.ImageField(upload_to=_image_path, validators=[validate_image_file])
    content_hash = models.CharField(max_length=64, editable=False)
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # Photo signals, written by the worker from the picture it decoded (or by
    # `backfill_photo_signals`); empty until then. The hashes are in ImageHash.
    phash = models.BigIntegerField(
        null=True, blank=True, editable=False, help_text="64-bit perceptual hash."
    )
    quality = models.JSONField(
        default=dict, blank=True, editable=False, help_text="Measures and findings."
    )
    # The findings as " code code ", so that a filter is a plain LIKE on any database.
    quality_flags = models.CharField(max_length=100, blank=True, editable=False)
    reused_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        help_text="The same photo on another seller's listing.",
    )
    reuse = models.JSONField(null=True, blank=True, editable=False)
    signals_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["position", "id"]
        indexes = [models.Index(fields=["content_hash"])]

    def __str__(self) -> str:
        return f"Photo {self.position + 1} of listing {self.listing_id}"

    detected_format = ""

    def save(self, *args, **kwargs):
        # The hash must always describe the stored bytes, however the row is saved.
        if self.image:
            digest = hashlib.sha256()
            for chunk in self.image.chunks():
                digest.update(chunk)
            self.content_hash = digest.hexdigest()
            self.image.seek(0)
            self.detected_format = sniff_format(self.image)
        super().save(*args, **kwargs)


class ImageHash(models.Model):
    """One perceptual hash of a photo (variant 0) or of one of its crops, split into
    three bands of 21, 21 and 22 bits, each indexed: a Hamming search is a few
    index lookups. `fine` is the 256-bit hash that confirms a candidate (null on
    rows stored before it existed, until `backfill_photo_signals` runs)."""

    image = models.ForeignKey(
        ListingImage, on_delete=models.CASCADE, related_name="hashes"
    )
    variant = models.PositiveSmallIntegerField()
    phash = models.BigIntegerField()
    band0 = models.IntegerField()
    band1 = models.IntegerField()
    band2 = models.IntegerField()
    fine = models.BinaryField(null=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["image", "variant"], name="one_hash_per_image_variant"
            )
        ]
        indexes = [
            models.Index(fields=[f"band{n}", "variant"], name=f"imagehash_band{n}")
            for n in range(3)
        ]

    def __str__(self) -> str:
        return f"{self.image_id}/{self.variant}: {self.phash & (2**64 - 1):016x}"


class ListingScore(models.Model):
    """What one model saw in one version of a listing's content, and the verdict."""

    class Verdict(models.TextChoices):
        PASS = "pass", "Pass"
        REVIEW = "review", "Review"
        HOLD = "hold", "Hold"

    listing = models.ForeignKey(
        Listing, on_delete=models.CASCADE, related_name="scores"
    )
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT)
    content_hash = models.CharField(max_length=64)
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    similarity = models.FloatField(
        null=True, help_text="Lowest raw cosine of an image with the title."
    )
    thresholds = models.JSONField(default=dict)
    threshold_version = models.ForeignKey(
        ThresholdVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        help_text="Applied thresholds used; empty: the shipped ones.",
    )
    reasons = models.JSONField(default=list)
    images = models.JSONField(default=list, help_text="Per-image evidence.")
    audit_sample = models.BooleanField(default=False)
    shadow = models.BooleanField(
        default=False, help_text="By a candidate model in shadow: never routes."
    )
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["-computed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["listing", "content_hash", "model_version"],
                name="unique_score_per_content_and_model",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_verdict_display()} ({self.model_version})"


class ScoringAttempt(models.Model):
    """One run of the scoring task; the database, not the queue, tracks the work."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        SCORED = "scored", "Scored"
        FAILED = "failed", "Failed"
        ABANDONED = "abandoned", "Abandoned (worker died or timed out)"
        SUPERSEDED = "superseded", "Superseded by newer content"

    listing = models.ForeignKey(
        Listing, on_delete=models.CASCADE, related_name="scoring_attempts"
    )
    content_hash = models.CharField(max_length=64)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(
        max_length=10, choices=Outcome.choices, default=Outcome.RUNNING
    )
    error = models.TextField(blank=True)
    retry_after = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["listing", "content_hash"])]


class DecisionQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("Listing decisions are append-only.")

    def delete(self):
        raise TypeError("Listing decisions are append-only.")


UNDOABLE_STATES = {
    Listing.Status.APPROVED,
    Listing.Status.REJECTED,
    Listing.Status.ESCALATED,
}


class ListingDecision(models.Model):
    """An append-only record of one status change: who, from, to, why, on what score."""

    listing = models.ForeignKey(
        Listing, on_delete=models.PROTECT, related_name="decisions"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        help_text="Empty when the system decided.",
    )
    from_status = models.CharField(max_length=10, choices=Listing.Status.choices)
    to_status = models.CharField(max_length=10, choices=Listing.Status.choices)
    reason_code = models.CharField(max_length=40)
    reason = models.TextField(
        blank=True,
        help_text="Why, for the audit log: a moderator's note stays internal.",
    )
    seller_message = models.TextField(
        blank=True,
        help_text="What the seller is told, in the API and webhooks.",
    )
    undoes = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="undone_by",
        help_text="The decision this one took back.",
    )
    model_version = models.CharField(max_length=300, blank=True)
    score = models.FloatField(null=True, blank=True)
    thresholds = models.JSONField(
        default=dict, blank=True, help_text="The thresholds the score was judged by."
    )
    model_verdict = models.CharField(
        max_length=10, blank=True, help_text="The model's verdict at the time."
    )
    queued_at = models.DateTimeField(
        null=True, blank=True, help_text="When the listing entered the review queue."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DecisionQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status} ({self.reason_code})"

    @property
    def actor_label(self) -> str:
        return self.actor.get_username() if self.actor else "system"

    @property
    def undoable(self) -> bool:
        """A moderator's approval, rejection or escalation (what review_decide
        writes), which its moderator may take back for a while: not an appeal, not
        an undo, not the system's routing."""
        return (
            self.actor_id is not None
            and self.to_status in UNDOABLE_STATES
            and self.reason_code != "undo"
        )

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("Listing decisions are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Listing decisions are append-only.")


class ReviewClaim(models.Model):
    """One moderator's hold on one queue item, from claim to decision or expiry.

    The live claim is ``Listing.claimed_by``/``claimed_until``, taken by a conditional
    UPDATE; this row is its history (who looked at what, for how long, and how it
    ended), written in the same transaction.
    """

    class Outcome(models.TextChoices):
        OPEN = "open", "Open"
        DECIDED = "decided", "Decided"
        SKIPPED = "skipped", "Skipped"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Lease expired"
        LOST = "lost", "Listing changed or decided elsewhere"

    listing = models.ForeignKey(
        Listing, on_delete=models.CASCADE, related_name="review_claims"
    )
    moderator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    claimed_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(
        max_length=10, choices=Outcome.choices, default=Outcome.OPEN
    )

    class Meta:
        ordering = ["-claimed_at"]
        indexes = [models.Index(fields=["moderator", "outcome", "ended_at"])]

    def __str__(self) -> str:
        return f"{self.listing_id} by {self.moderator_id} ({self.outcome})"


class ListingAppeal(models.Model):
    """A seller's appeal of one rejection; at most one per rejection."""

    listing = models.ForeignKey(
        Listing, on_delete=models.CASCADE, related_name="appeals"
    )
    rejection = models.OneToOneField(
        ListingDecision, on_delete=models.PROTECT, related_name="appeal"
    )
    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    message = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Appeal of {self.listing_id} ({self.created_at:%Y-%m-%d})"


class IdempotencyKey(models.Model):
    """One API request sent with an Idempotency-Key, and the answer it got: the
    same request again with the same key gets that answer back, not a second
    listing or decision."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    # Empty while the first request runs.
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    location = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key")
        ]
        # The purge (listings.tasks.purge_idempotency_keys) finds old keys by age.
        indexes = [models.Index(fields=["created_at"], name="idempotency_key_age")]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code or 'running'})"
