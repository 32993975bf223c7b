"""Model versions and the embedding cache."""

from __future__ import annotations

import numpy as np
from django.conf import settings
from django.db import models
from django.db.models import Q


class ModelVersion(models.Model):
    """One exact model (its weights' fingerprint) at one precision, and its
    shipped thresholds.

    The precision is part of the version: embeddings cached and scores stored under
    a version were all computed at its precision, never a mix (bf16 moves cosines
    by about 0.002). The same weights at another precision are another row.

    At most one row is active (a database constraint); while none is, the model
    named in settings (CLIPMATCH_MODEL) scores. At most one other row scores in
    shadow: stored beside the active score, never routing.
    """

    name = models.CharField(max_length=200)
    source = models.CharField(max_length=500, help_text="Hub id or local directory.")
    fingerprint = models.CharField(max_length=64)
    precision = models.CharField(
        max_length=4,
        choices=[("fp32", "fp32"), ("bf16", "bf16"), ("fp16", "fp16")],
        default="fp32",
        editable=False,
        help_text="The precision it scores at (CLIPMATCH_PRECISION when recorded).",
    )
    thresholds = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict, blank=True)
    report = models.JSONField(
        default=dict, blank=True, help_text="The fine-tuning run that made it."
    )
    is_active = models.BooleanField(default=False, editable=False)
    is_shadow = models.BooleanField(
        default=False,
        editable=False,
        help_text="Scores beside the active model, never routing.",
    )
    activated_at = models.DateTimeField(null=True, blank=True, editable=False)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint", "source", "precision"],
                name="unique_model_fingerprint_precision",
            ),
            models.UniqueConstraint(
                fields=["is_active"],
                condition=Q(is_active=True),
                name="one_active_model_version",
            ),
            models.UniqueConstraint(
                fields=["is_shadow"],
                condition=Q(is_shadow=True),
                name="one_shadow_model_version",
            ),
            models.CheckConstraint(
                condition=~(Q(is_active=True) & Q(is_shadow=True)),
                name="active_model_version_is_not_shadow",
            ),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.version

    @property
    def version(self) -> str:
        return f"{self.name}@{self.fingerprint[:12]}"


class Embedding(models.Model):
    """Unit vectors of one image or text under one model, keyed by content hash.

    Rescoring after a threshold change reads these instead of running the model.
    A text has one row per context-length window.
    """

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        TEXT = "text", "Text"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE)
    kind = models.CharField(max_length=5, choices=Kind.choices)
    content_hash = models.CharField(max_length=64)
    chunks = models.PositiveSmallIntegerField(default=1)
    dim = models.PositiveIntegerField()
    vectors = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "kind", "content_hash"],
                name="unique_embedding_per_content",
            )
        ]

    def as_array(self) -> np.ndarray:
        return np.frombuffer(bytes(self.vectors), dtype=np.float32).reshape(
            self.chunks, self.dim
        )


class ThresholdVersion(models.Model):
    """A set of thresholds for one model: proposed from decisions, then applied.

    Only applied versions route listings; every score records the one it used.
    `thresholds` holds the global cut-offs and, under "categories", per-category
    ones where there were enough decisions.
    """

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        APPLIED = "applied", "Applied"

    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="threshold_versions"
    )
    thresholds = models.JSONField()
    figures = models.JSONField(
        default=dict, blank=True, help_text="What the proposal was chosen from."
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PROPOSED
    )
    created_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"thresholds #{self.pk} for {self.model_version} ({self.status})"


class ModelAuditEntry(models.Model):
    """Append-only record of a change to what scores listings: who, what, when."""

    class Action(models.TextChoices):
        REGISTERED = "registered", "Registered"
        ACTIVATED = "activated", "Activated"
        SHADOWED = "shadowed", "Set to score in shadow"
        THRESHOLDS_APPLIED = "thresholds_applied", "Thresholds applied"

    action = models.CharField(max_length=20, choices=Action.choices)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT)
    threshold_version = models.ForeignKey(
        ThresholdVersion, null=True, blank=True, on_delete=models.PROTECT
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        verbose_name_plural = "model audit entries"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("Model audit entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Model audit entries are append-only.")
