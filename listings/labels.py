"""Moderators' decisions read as labels: for calibration, for fine-tuning on the
marketplace's own catalog, and for comparing a shadow model with the active one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from listings.models import Listing, ListingDecision, ListingScore

# Reject reasons that say the photos and the words disagree: the model's business.
# "prohibited" and "other" say nothing about that, so they are not labels.
MISMATCH_REASONS = ("wrong_image", "wrong_category", "misleading_description")


@dataclass(frozen=True)
class LabelledListing:
    """A listing as a moderator last judged it: 1 = photos match, 0 = they don't."""

    listing_id: int
    label: int
    decided_at: datetime
    category: str
    title: str
    description: str
    image_paths: tuple[str, ...]
    score_id: int | None


def listings_labelled_by_decisions() -> list[LabelledListing]:
    """Listings still in the state a moderator put them in, oldest decision first.

    Approved listings are matches; listings rejected for a mismatch reason are
    mismatches. A listing edited after its decision is back in the system's hands
    and is left out: the decision was about other content.
    """
    decided = Listing.objects.filter(
        status__in=[Listing.Status.APPROVED, Listing.Status.REJECTED]
    )
    latest = (
        ListingDecision.objects.filter(
            listing__in=decided,
            actor__isnull=False,
            to_status__in=[Listing.Status.APPROVED, Listing.Status.REJECTED],
        )
        .select_related("listing__category")
        .prefetch_related("listing__images")
        .order_by("listing_id", "-created_at", "-pk")
    )
    seen, rows = set(), []
    for decision in latest:
        if decision.listing_id in seen:
            continue
        seen.add(decision.listing_id)
        listing = decision.listing
        if decision.to_status != listing.status:
            continue
        if decision.to_status == Listing.Status.APPROVED:
            label = 1
        elif decision.reason_code in MISMATCH_REASONS:
            label = 0
        else:
            continue
        rows.append(
            LabelledListing(
                listing_id=listing.pk,
                label=label,
                decided_at=decision.created_at,
                category=listing.category.name,
                title=listing.title,
                description=listing.description,
                image_paths=tuple(image.image.path for image in listing.images.all()),
                score_id=listing.score_id,
            )
        )
    return sorted(rows, key=lambda r: (r.decided_at, r.listing_id))


def scores_for_calibration(
    *, model_version_id: int
) -> list[tuple[LabelledListing, ListingScore]]:
    """Labelled listings whose last score came from the given model version."""
    labelled = [r for r in listings_labelled_by_decisions() if r.score_id]
    scores = ListingScore.objects.in_bulk([r.score_id for r in labelled])
    return [
        (r, scores[r.score_id])
        for r in labelled
        if r.score_id in scores
        and scores[r.score_id].model_version_id == model_version_id
    ]


def shadow_comparison(*, candidate_id: int) -> dict:
    """How a candidate's shadow scores compare with the scores that routed the
    same content: verdicts side by side, and on moderators' labels, both models'
    ROC-AUC and precision/recall at their own pass thresholds."""
    from clipmatch.inference.metrics import binary_metrics

    shadow_scores = ListingScore.objects.filter(
        model_version_id=candidate_id, shadow=True
    ).select_related("listing__score")
    verdicts: dict[str, int] = {}
    by_listing = {}
    for shadow in shadow_scores:
        routed = shadow.listing.score
        if routed is None or routed.content_hash != shadow.content_hash:
            continue
        key = f"{routed.verdict}->{shadow.verdict}"
        verdicts[key] = verdicts.get(key, 0) + 1
        by_listing[shadow.listing_id] = (routed, shadow)
    labelled = [
        (r.label, *by_listing[r.listing_id])
        for r in listings_labelled_by_decisions()
        if r.listing_id in by_listing
    ]
    result = {"compared": len(by_listing), "verdicts": dict(sorted(verdicts.items()))}
    if len({label for label, _, _ in labelled}) == 2:
        labels = [label for label, _, _ in labelled]
        result["labelled"] = {
            name: binary_metrics(
                labels,
                [x.similarity for x in scores],
                scores[0].thresholds["title"]["pass"],
            )
            for name, scores in (
                ("active", [routed for _, routed, _ in labelled]),
                ("candidate", [shadow for _, _, shadow in labelled]),
            )
        }
    return result
