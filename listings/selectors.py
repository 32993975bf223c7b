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


def listings_visible_to(*, user) -> QuerySet[Listing]:
    """What a user may see through the API: moderators all, sellers their own,
    anyone else nothing; deleted listings never."""
    from listings.roles import is_moderator, is_seller

    qs = Listing.objects.filter(deleted_at__isnull=True)
    if is_moderator(user):
        pass
    elif is_seller(user):
        qs = qs.filter(seller=user)
    else:
        qs = qs.none()
    return qs.select_related(
        "category", "seller", "score", "score__model_version"
    ).prefetch_related("images")


def listing_list(
    *,
    user,
    status: str | None = None,
    band: str | None = None,
    category: str | None = None,
    updated_since=None,
) -> QuerySet[Listing]:
    """The listings a user may see, filtered; `band` is the last score's verdict and
    `category` a category's slug."""
    qs = listings_visible_to(user=user)
    if status:
        qs = qs.filter(status=status)
    if band:
        qs = qs.filter(score__verdict=band)
    if category:
        qs = qs.filter(category__slug=category)
    if updated_since is not None:
        qs = qs.filter(updated_at__gte=updated_since)
    return qs


def listing_status(*, listing_id: int) -> str | None:
    """The status in the database now (one small query; polled by ?wait=N)."""
    return (
        Listing.objects.filter(pk=listing_id).values_list("status", flat=True).first()
    )
