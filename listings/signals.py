"""Receivers that ask for scoring when a listing's content changes, queue the
catalog's rescore when the model layer changes its version, and set up the
reconciler's and the idempotency-key purge's schedules after migrations.

A content change must move the listing to pending in the same transaction, or a
crash between commit and a later callback would leave new, unchecked content
published: so the receiver calls the request service directly. The service only
marks and queues; scoring itself happens in the worker, after commit.
"""

from __future__ import annotations

import sys

from django.db.models.signals import post_delete, post_migrate, post_save

CONTENT_FIELDS = {"title", "description", "category", "category_id"}


def _request_scoring(listing_id: int) -> None:
    from listings.services.scoring import listing_request_scoring

    listing_request_scoring(listing_id=listing_id)


def listing_saved(sender, instance, raw=False, update_fields=None, **kwargs):
    if raw:  # loaddata: rows are restored as they were, nothing is queued
        return
    if update_fields is not None and not CONTENT_FIELDS & set(update_fields):
        return  # status or bookkeeping only: the content did not change
    _request_scoring(instance.pk)


def image_changed(sender, instance, raw=False, **kwargs):
    if raw:
        return
    _request_scoring(instance.listing_id)


def schedule_message(schedule, *, created: bool) -> str:
    verb = "Created" if created else "Updated"
    return f"{verb} schedule {schedule.name!r}: every {schedule.minutes} minute(s)."


def report_schedule(schedule, created: bool, verbosity: int = 1, stdout=None) -> None:
    """After migrate: name a schedule it created (a fresh database), quietly at -v0;
    one it only updated is not news."""
    if created and verbosity >= 1:
        (stdout or sys.stdout).write(schedule_message(schedule, created=True) + "\n")


def schedules_after_migrate(sender, verbosity=1, stdout=None, **kwargs):
    from listings.services.idempotency import idempotency_schedule_ensure
    from listings.services.reconcile import schedules_ensure

    report_schedule(*schedules_ensure(), verbosity, stdout)
    report_schedule(*idempotency_schedule_ensure(), verbosity, stdout)


def queue_catalog_rescore(version_id: int) -> None:
    from listings.services import queueing

    queueing.queue_task(
        "listings.tasks.rescore_catalog",
        version_id,
        task_name=f"rescore-catalog-{version_id}",
    )


def queue_catalog_shadow(version_id: int) -> None:
    from listings.services import queueing

    queueing.queue_task(
        "listings.tasks.shadow_catalog",
        version_id,
        task_name=f"shadow-catalog-{version_id}",
    )


def model_version_activated(sender, version_id: int, **kwargs) -> None:
    queue_catalog_rescore(version_id)


def model_version_shadowed(sender, version_id: int, **kwargs) -> None:
    queue_catalog_shadow(version_id)


def connect(app_config) -> None:
    """Registered from ListingsConfig.ready()."""
    from clipmatch import signals as model_signals
    from listings.models import Listing, ListingImage

    post_save.connect(listing_saved, sender=Listing, dispatch_uid="listing_saved")
    post_save.connect(image_changed, sender=ListingImage, dispatch_uid="image_saved")
    post_delete.connect(
        image_changed, sender=ListingImage, dispatch_uid="image_deleted"
    )
    post_migrate.connect(
        schedules_after_migrate, sender=app_config, dispatch_uid="listings_schedules"
    )
    model_signals.model_version_activated.connect(
        model_version_activated, dispatch_uid="listings_rescore_on_activation"
    )
    model_signals.model_version_shadowed.connect(
        model_version_shadowed, dispatch_uid="listings_shadow_on_shadowing"
    )
