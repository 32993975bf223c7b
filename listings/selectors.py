"""Reads for listings: what to rescore, and counts for the demo and the admin."""

from __future__ import annotations

from django.db.models import Count, F, Q, QuerySet

from clipmatch.services import ActiveModel
from listings.models import Listing, ListingDecision


def listings_for_rescore(*, active: ActiveModel, stale_only: bool) -> QuerySet[Listing]:
    """System-routed listings; with stale_only, those scored by another model or
    other thresholds than the active ones, or never scored."""
    qs = Listing.objects.filter(
        status__in=[
            Listing.Status.PENDING,
            Listing.Status.PASSED,
            Listing.Status.REVIEW,
            Listing.Status.HELD,
        ]
    )
    if stale_only:
        qs = qs.filter(
            Q(score__isnull=True)
            | ~Q(score__model_version=active.version)
            | ~Q(score__thresholds=active.thresholds.as_dict())
            | ~Q(score__content_hash=F("content_hash"))
        )
    return qs.order_by("pk")


def listing_status_counts() -> dict[str, int]:
    """How many listings are in each status (every status present, zeros included)."""
    counts = dict.fromkeys(Listing.Status.values, 0)
    for row in Listing.objects.values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return counts


def listing_history(*, listing: Listing) -> QuerySet[ListingDecision]:
    """The listing's decisions, oldest first, with who made them."""
    return listing.decisions.select_related("actor").order_by("created_at", "pk")
