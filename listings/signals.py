"""Receivers that only queue work: a content change asks for scoring after commit."""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.db.models.signals import post_delete, post_save


def _request_scoring(listing_id: int) -> None:
    from listings.services import listing_request_scoring

    listing_request_scoring(listing_id=listing_id)


CONTENT_FIELDS = {"title", "description", "category", "category_id"}


def listing_saved(sender, instance, raw=False, update_fields=None, **kwargs):
    if raw:  # loaddata: rows are restored as they were, nothing is queued
        return
    if update_fields is not None and not CONTENT_FIELDS & set(update_fields):
        return  # status or bookkeeping only: the content did not change
    transaction.on_commit(partial(_request_scoring, instance.pk))


def image_changed(sender, instance, raw=False, **kwargs):
    if raw:
        return
    transaction.on_commit(partial(_request_scoring, instance.listing_id))


def connect() -> None:
    """Registered from ListingsConfig.ready()."""
    from listings.models import Listing, ListingImage

    post_save.connect(listing_saved, sender=Listing, dispatch_uid="listing_saved")
    post_save.connect(image_changed, sender=ListingImage, dispatch_uid="image_saved")
    post_delete.connect(
        image_changed, sender=ListingImage, dispatch_uid="image_deleted"
    )
