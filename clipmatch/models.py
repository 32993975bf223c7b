"""Model versions and the embedding cache."""

from __future__ import annotations

import numpy as np
from django.db import models


class ModelVersion(models.Model):
    """One exact model (its weights' fingerprint) and its shipped thresholds."""

    name = models.CharField(max_length=200)
    source = models.CharField(max_length=500, help_text="Hub id or local directory.")
    fingerprint = models.CharField(max_length=64)
    thresholds = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint", "source"], name="unique_model_fingerprint"
            )
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
