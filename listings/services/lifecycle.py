"""A seller's listing: create, update, soft delete, and the pre-publish check."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from clipmatch.images import inspect_image
from clipmatch.inference.scoring import Assessment
from clipmatch.services import ActiveModel, model_version_active
from listings.models import Category, Listing, ListingDecision, ListingImage
from listings.services.assessment import content_assess
from listings.services.exceptions import ListingNotEditable
from listings.services.queueing import after_commit
from listings.services.transitions import QUEUE_FIELDS, leave_queue, listing_locked


def listing_create(
    *,
    seller,
    title: str,
    description: str,
    category: Category,
    price: Decimal,
    images: list[tuple[str, bytes]],
) -> Listing:
    """Create a listing with its images in one transaction; scoring follows commit."""
    with transaction.atomic():
        listing = Listing.objects.create(
            seller=seller,
            title=title,
            description=description,
            category=category,
            price=price,
        )
        for position, (name, data) in enumerate(images):
            ListingImage.objects.create(
                listing=listing, image=ContentFile(data, name=name), position=position
            )
    return listing


def listing_update(
    *,
    listing: Listing,
    actor,
    changes: dict,
    images: list[tuple[str, bytes]] | None = None,
) -> Listing:
    """Change a listing's text, category, price or images (all replaced at once).

    A content change sends the listing back to pending and queues a rescore through
    `listing_request_scoring` (from the save signals), in this transaction.
    """
    allowed = {"title", "description", "category", "price"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"Not a changeable field: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        current = _locked_for_its_seller(listing, actor, "change")
        for name, value in changes.items():
            setattr(current, name, value)
        if changes:
            current.save(update_fields=[*changes, "updated_at"])
        if images is not None:
            # One by one, so that each removal and addition goes through the same
            # signals as the admin's; scoring is queued once, for the last content.
            for old in current.images.all():
                old.delete()
                # The file goes only once the change is committed.
                after_commit(old.image.storage.delete, old.image.name)
            for position, (name, data) in enumerate(images):
                ListingImage.objects.create(
                    listing=current,
                    image=ContentFile(data, name=name),
                    position=position,
                )
            current.save(update_fields=["updated_at"])
    current.refresh_from_db()
    return current


def _locked_for_its_seller(listing: Listing, actor, verb: str) -> Listing:
    """The listing locked, if it still exists and `actor` is its seller."""
    current = listing_locked(listing.pk)
    if current is None or current.deleted_at is not None:
        raise Listing.DoesNotExist(f"Listing {listing.pk} no longer exists.")
    if current.seller_id != getattr(actor, "pk", None):
        raise ListingNotEditable(f"Only the listing's seller can {verb} it.")
    return current


def listing_soft_delete(*, listing: Listing, actor) -> ListingDecision:
    """Hide a listing for good; it stays in the database with its audit trail.

    The audit row records who deleted it, from which status.
    """
    with transaction.atomic():
        current = _locked_for_its_seller(listing, actor, "delete")
        current.deleted_at = timezone.now()
        leave_queue(current, current.deleted_at)
        current.save(update_fields=["deleted_at", "updated_at", *QUEUE_FIELDS])
        listing.deleted_at = current.deleted_at
        return ListingDecision.objects.create(
            listing=current,
            actor=actor,
            from_status=current.status,
            to_status=current.status,
            reason_code="deleted",
            reason="Deleted by its seller.",
        )


@dataclass(frozen=True)
class PrecheckResult:
    """A pre-publish check: the assessment and the model that made it."""

    assessment: Assessment
    active: ActiveModel


def listing_precheck(
    *, title: str, description: str, category: Category, image: bytes
) -> PrecheckResult:
    """Score one image and a text as a listing would be, storing no listing.

    Only the embedding cache is written. Raises UnreadableImage for a bad image and
    ModelLoadError or ImproperlyConfigured when the configured model cannot run.
    """
    inspect_image(image)  # a bad image is the caller's error, before any model work
    active = model_version_active()
    assessment = content_assess(
        title=title,
        description=description,
        category_name=category.name,
        images=[image],
        active=active,
    )
    return PrecheckResult(assessment=assessment, active=active)
