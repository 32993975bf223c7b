"""django-q2 tasks: they take ids, call one service, and are safe to run twice."""

from __future__ import annotations

from dataclasses import asdict


def score_listing(listing_id: int) -> dict:
    """Score one listing's current content (queued on commit by its save)."""
    from listings.services import listing_score

    return asdict(listing_score(listing_id=listing_id))


def reconcile_scoring() -> dict:
    """Re-queue listings whose scoring was lost, died or is due for a retry."""
    from listings.services import scoring_reconcile

    return asdict(scoring_reconcile())


def rescore_listing(listing_id: int) -> dict:
    """Score a routed listing again with the active model and thresholds."""
    from listings.services import listing_rescore

    return asdict(listing_rescore(listing_id=listing_id))
