"""How much a precision changes the verdicts, against another, on stored listings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from django.db import transaction

from clipmatch.inference.images import UnreadableImage
from clipmatch.models import ModelVersion
from clipmatch.services import model_version_active
from listings.models import Listing
from listings.services.assessment import listing_assess


@dataclass
class PrecisionComparison:
    """Verdicts of the same listings scored at two precisions of one model."""

    model: str
    reference: str
    precision: str
    listings: int = 0
    changed: list[int] = field(default_factory=list)  # listing ids
    max_similarity_delta: float = 0.0
    mean_similarity_delta: float = 0.0

    @property
    def changed_share(self) -> float:
        return len(self.changed) / self.listings if self.listings else 0.0


def precision_compare(
    *, precision: str, reference: str = "fp32", listing_ids: list[int] | None = None
) -> PrecisionComparison:
    """Score listings with the model in force at `reference` and at `precision`
    and count the verdicts that differ; writes nothing (all rolled back).

    Each precision scores under its own model-version row, as the app would, so
    neither borrows the other's cached embeddings.
    """
    active = model_version_active()
    queryset = Listing.objects.select_related("category").prefetch_related("images")
    if listing_ids is not None:
        queryset = queryset.filter(pk__in=listing_ids)
    listings = list(queryset.order_by("pk"))
    report = PrecisionComparison(
        model=active.version.version, reference=reference, precision=precision
    )
    with transaction.atomic():
        scored = [_scores(active, p, listings) for p in (reference, precision)]
        transaction.set_rollback(True)
    deltas = []
    for listing, before, after in zip(listings, *scored, strict=True):
        if before is None or after is None:
            continue  # an unreadable image is refused at any precision
        report.listings += 1
        if before.verdict != after.verdict:
            report.changed.append(listing.pk)
        deltas.append(abs(before.similarity - after.similarity))
    if deltas:
        report.max_similarity_delta = max(deltas)
        report.mean_similarity_delta = sum(deltas) / len(deltas)
    return report


def _scores(active, precision: str, listings: list[Listing]) -> list:
    version, _ = ModelVersion.objects.get_or_create(
        fingerprint=active.version.fingerprint,
        source=active.version.source,
        precision=precision,
        defaults={
            "name": active.version.name,
            "thresholds": active.version.thresholds,
        },
    )
    # The thresholds in force stay those of the model in force: only the
    # precision differs between the two runs.
    at_precision = dataclasses.replace(active, version=version)
    results = []
    for listing in listings:
        try:
            results.append(listing_assess(listing, at_precision))
        except UnreadableImage:
            results.append(None)
    return results
