"""Reads for listings: what to rescore."""

from __future__ import annotations

from django.db.models import F, Q, QuerySet

from clipmatch.services import ActiveModel
from listings.models import Listing


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
