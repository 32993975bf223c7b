"""django-q2 tasks: they take ids, call one service, and are safe to run twice."""

from __future__ import annotations

import logging
from dataclasses import asdict

# django-q2's own lines for these every-minute tasks are DEBUG (listings.logs): what
# they did, when they did anything, is said here.
logger = logging.getLogger(__name__)


def score_listing(listing_id: int) -> dict:
    """Score one listing's current content (queued on commit by its save)."""
    from listings.services.scoring import listing_score

    return asdict(listing_score(listing_id=listing_id))


def reconcile_scoring() -> dict:
    """Re-queue listings whose scoring was lost, died or is due for a retry."""
    from listings.services.reconcile import scoring_reconcile

    report = scoring_reconcile()
    if (
        report.requeued
        or report.abandoned
        or report.quarantined
        or report.orphans_closed
    ):
        logger.info(
            "Reconciler: listings re-queued: %d, abandoned attempts: %d, "
            "quarantined to review: %d, orphaned attempts closed: %d.",
            len(report.requeued),
            len(report.abandoned),
            len(report.quarantined),
            len(report.orphans_closed),
        )
    return asdict(report)


def purge_idempotency_keys() -> int:
    """Delete Idempotency-Keys older than their retention (an hourly schedule)."""
    from listings.services.idempotency import idempotency_keys_purge

    deleted = idempotency_keys_purge()
    if deleted:
        logger.info("Idempotency keys purged: %d.", deleted)
    return deleted


def rescore_catalog(model_version_id: int) -> dict:
    """Fan a rescore of the catalog out in batches, for a just-activated version."""
    from listings.services.rescoring import catalog_rescore_queue

    return asdict(catalog_rescore_queue(model_version_id=model_version_id))


def rescore_batch(model_version_id: int, listing_ids: list[int]) -> dict:
    """Rescore one batch of listings if the version is still the active one."""
    from listings.services.rescoring import listings_rescore_batch

    return asdict(
        listings_rescore_batch(
            model_version_id=model_version_id, listing_ids=listing_ids
        )
    )


def score_shadow(listing_id: int) -> dict:
    """Score one routed listing with the shadow candidate, beside the active score."""
    from listings.services.rescoring import listing_score_shadow

    return asdict(listing_score_shadow(listing_id=listing_id))


def shadow_catalog(model_version_id: int) -> dict:
    """Fan shadow scoring of the catalog out in batches, for a new candidate."""
    from listings.services.rescoring import shadow_catalog_queue

    return asdict(shadow_catalog_queue(model_version_id=model_version_id))


def shadow_batch(model_version_id: int, listing_ids: list[int]) -> dict:
    """Shadow-score one batch if the version is still the shadow candidate."""
    from listings.services.rescoring import listings_shadow_batch

    return asdict(
        listings_shadow_batch(
            model_version_id=model_version_id, listing_ids=listing_ids
        )
    )


def worker_check() -> bool:
    """Does nothing: `manage.py serve` waits for a worker to run it."""
    return True
