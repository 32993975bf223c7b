"""Scoring routed listings again: with a newly active model or new thresholds
(rescoring), and with a candidate beside the active model (shadow scoring)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from clipmatch.inference.images import UnreadableImage
from clipmatch.inference.scoring import Assessment
from clipmatch.models import ModelVersion
from clipmatch.services import (
    ActiveModel,
    model_version_active,
    model_version_shadowing,
)
from listings.models import Listing, ListingDecision, ListingScore
from listings.services.assessment import listing_assess, listings_assess_stored
from listings.services.bulk import rows_update
from listings.services.exceptions import ImageStorageError
from listings.services.queueing import (
    RESCORE_BATCH_TASK,
    SHADOW_BATCH_TASK,
    after_commit,
    queue_batches,
)
from listings.services.scoring import (
    ScoreOutcome,
    listing_keep_place,
    listing_quarantine,
    listing_route,
    model_superseded,
    route_plan,
    score_values,
)
from listings.services.transitions import (
    HUMAN_STATES,
    SYSTEM_STATES,
    listing_locked,
    listings_transition_system,
)

logger = logging.getLogger(__name__)
Status = Listing.Status
RESCORE_BATCH_SIZE = 100


def listing_rescore(
    *, listing_id: int, active: ActiveModel | None = None
) -> ScoreOutcome:
    """Score a routed listing again with the active model and thresholds.

    Human decisions are never overridden: approved and rejected listings are left
    alone, and pending ones to the queue. Cached embeddings make a threshold change
    cost no model run. An image that has become unreadable sends the listing to
    review; a model error propagates, so a broken model stops a batch.
    """
    listing = Listing.objects.select_related("category").filter(pk=listing_id).first()
    if listing is None:
        return ScoreOutcome(listing_id, "missing")
    if listing.status not in SYSTEM_STATES - {Status.PENDING}:
        return ScoreOutcome(listing_id, "skipped", listing.status)
    status, content_hash = listing.status, listing.content_hash
    active = active or model_version_active()
    try:
        assessment = listing_assess(listing, active)
    except ImageStorageError as exc:  # storage trouble: this listing, not the batch
        logger.warning("Rescoring listing %s: %s", listing_id, exc)
        return ScoreOutcome(listing_id, "failed", listing.status, str(exc))
    except UnreadableImage as exc:
        return _rescore_unreadable(listing_id, status, content_hash, exc)
    with transaction.atomic():
        listing = listing_locked(listing_id)
        if listing.status != status or listing.content_hash != content_hash:
            return ScoreOutcome(listing_id, "superseded", listing.status)
        if model_superseded(active):
            return ScoreOutcome(listing_id, "superseded", listing.status)
        previous = listing.score
        audit = bool(
            previous
            and previous.audit_sample
            and assessment.verdict == ListingScore.Verdict.PASS
        )
        to_status = listing_route(
            listing, active, assessment, content_hash, audit, timezone.now(), "rescored"
        )
    return ScoreOutcome(listing_id, "rescored", to_status)


def _rescore_unreadable(
    listing_id: int, status: str, content_hash: str, exc: UnreadableImage
) -> ScoreOutcome:
    """An image that has become unreadable sends a passed listing to review."""
    with transaction.atomic():
        listing = listing_locked(listing_id)
        if listing.status != status or listing.content_hash != content_hash:
            return ScoreOutcome(listing_id, "superseded", listing.status)
        if listing.status in (Status.REVIEW, Status.HELD):
            # Already in front of a person; a held listing stays held.
            listing.scoring_error = f"Rescoring failed: {exc}"
            listing.save(update_fields=["scoring_error"])
            return ScoreOutcome(listing_id, "failed", listing.status, str(exc))
        to_status = listing_quarantine(listing, str(exc), failures=1, permanent=True)
    return ScoreOutcome(listing_id, "failed", to_status, str(exc))


def listings_rescore(
    *, listing_ids: list[int], active: ActiveModel, chunk_size: int = 500
) -> dict[str, int]:
    """Rescore routed listings set by set, as `listing_rescore` would one by one:
    the same listings, transitions and audit rows, how many had each outcome.

    Per chunk: bulk reads of the listings, their images' hashes and the cached
    embeddings (a threshold change reads no file and runs no model; what is not
    cached yet is embedded in one batched forward), the verdicts computed in
    memory, then one transaction that locks the chunk's rows, drops those that
    changed meanwhile, and writes the scores, listings and audit rows in bulk;
    every move is checked by the state machine.
    """
    outcomes: dict[str, int] = {}
    for start in range(0, len(listing_ids), chunk_size):
        chunk = listing_ids[start : start + chunk_size]
        for outcome in _rescore_chunk(chunk, active):
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


ROUTED = SYSTEM_STATES - {Status.PENDING}


def _rescore_chunk(listing_ids: list[int], active: ActiveModel) -> list[str]:
    read = {
        listing.pk: listing
        for listing in Listing.objects.select_related("category").filter(
            pk__in=listing_ids
        )
    }
    outcomes = ["missing"] * (len(set(listing_ids)) - len(read))
    routed = [listing for listing in read.values() if listing.status in ROUTED]
    outcomes += ["skipped"] * (len(read) - len(routed))
    assessed = listings_assess_stored(routed, active)
    scored = {}
    for listing in routed:
        result = assessed[listing.pk]
        if isinstance(result, ImageStorageError):
            logger.warning("Rescoring listing %s: %s", listing.pk, result)
            outcomes.append("failed")
        elif isinstance(result, UnreadableImage):
            outcomes.append(
                _rescore_unreadable(
                    listing.pk, listing.status, listing.content_hash, result
                ).outcome
            )
        else:
            scored[listing.pk] = result
    with transaction.atomic():
        locked = (
            Listing.objects.select_for_update(of=("self",))
            .select_related("category", "score")
            .filter(pk__in=list(scored))
            .order_by("pk")
        )
        if model_superseded(active):
            return outcomes + ["superseded"] * len(scored)
        current = []
        for listing in locked:
            before = read[listing.pk]
            if (listing.status, listing.content_hash) == (
                before.status,
                before.content_hash,
            ):
                current.append(listing)
        outcomes += ["superseded"] * (len(scored) - len(current))
        _route_many(current, active, scored, timezone.now())
    return outcomes + ["rescored"] * len(current)


def _route_many(
    listings: list[Listing],
    active: ActiveModel,
    assessments: dict[int, Assessment],
    now,
) -> None:
    """`listing_route` for many locked listings, with bulk writes."""
    said_no = _last_human_calls_no([listing.pk for listing in listings])
    existing = {
        (score.listing_id, score.content_hash): score
        for score in ListingScore.objects.filter(
            model_version=active.version,
            listing_id__in=[listing.pk for listing in listings],
        )
    }
    plans, new, changed, fields = [], [], [], []
    for listing in listings:
        assessment = assessments[listing.pk]
        previous = listing.score
        audit = bool(
            previous
            and previous.audit_sample
            and assessment.verdict == ListingScore.Verdict.PASS
        )
        to_status, reasons, reason_code = route_plan(
            listing,
            assessment,
            audit,
            lambda listing: listing.pk in said_no,
            "rescored",
        )
        values = score_values(listing, active, assessment, reasons, audit, now)
        fields = list(values)
        score = existing.get((listing.pk, listing.content_hash))
        if score is None:
            score = ListingScore(
                listing=listing,
                content_hash=listing.content_hash,
                model_version=active.version,
                **values,
            )
            new.append(score)
        else:
            for name, value in values.items():
                setattr(score, name, value)
            score.model_version = active.version  # the audit row names it
            changed.append(score)
        plans.append((listing, to_status, score, reason_code))
    rows_update(changed, fields)
    ListingScore.objects.bulk_create(new, batch_size=500)
    stay, moves = [], []
    for listing, to_status, score, reason_code in plans:
        if to_status != listing.status:
            moves.append((listing, to_status, score, reason_code))
            continue
        listing_keep_place(listing, score)
        listing.updated_at = now
        stay.append(listing)
    rows_update(stay, ["score", "updated_at", "review_priority"])
    listings_transition_system(moves=moves, now=now)


def _last_human_calls_no(listing_ids: list[int]) -> set[int]:
    """`_last_human_call_was_no` for many listings, in one query."""
    last: dict[int, str] = {}
    rows = (
        ListingDecision.objects.filter(
            listing_id__in=listing_ids, to_status__in=HUMAN_STATES
        )
        .order_by("listing_id", "created_at", "id")
        .values_list("listing_id", "to_status")
    )
    for listing_id, to_status in rows:
        last[listing_id] = to_status
    return {pk for pk, to_status in last.items() if to_status != Status.APPROVED}


def listings_queue_rescore(
    *, listing_ids: list[int], batch_size: int = RESCORE_BATCH_SIZE
) -> int:
    """Queue these listings for a rescore with the active model, in batches, after
    commit (an admin action); returns how many batches."""
    version_id = model_version_active().version.pk
    after_commit(
        queue_batches,
        RESCORE_BATCH_TASK,
        version_id,
        listing_ids,
        batch_size,
        f"rescore-{version_id}-selected-{listing_ids[0] if listing_ids else 0}",
    )
    return -(-len(listing_ids) // batch_size)


@dataclass
class RescoreReport:
    """What a rescore task did, by outcome."""

    model_version_id: int
    skipped: str = ""
    batches: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def catalog_rescore_queue(
    *, model_version_id: int, batch_size: int = RESCORE_BATCH_SIZE
) -> RescoreReport:
    """Queue batches of the listings not yet scored by the active version.

    Does nothing if another version was activated since: that one queued its own.
    Safe to run twice: a listing already rescored is no longer stale.
    """
    from listings.selectors import listings_for_rescore

    report = RescoreReport(model_version_id)
    active = model_version_active()
    if active.version.pk != model_version_id:
        report.skipped = f"{active.version} is active now"
        return report
    ids = list(
        listings_for_rescore(active=active, stale_only=True)
        .exclude(status=Status.PENDING)
        .values_list("pk", flat=True)
    )
    report.batches = queue_batches(
        RESCORE_BATCH_TASK,
        model_version_id,
        ids,
        batch_size,
        f"rescore-{model_version_id}",
    )
    return report


def listings_rescore_batch(
    *, model_version_id: int, listing_ids: list[int]
) -> RescoreReport:
    """Rescore listings with the active model, if it is still the given version."""
    active = model_version_active()
    report = RescoreReport(model_version_id)
    if active.version.pk != model_version_id:
        report.skipped = f"{active.version} is active now"
        return report
    report.outcomes = listings_rescore(listing_ids=listing_ids, active=active)
    return report


def listing_score_shadow(
    *, listing_id: int, shadow: ActiveModel | None = None
) -> ScoreOutcome:
    """Score a routed listing's content with the shadow candidate and store it
    beside the active score. Never routes; safe to repeat (one score per content
    and model). A candidate whose files are gone raises, touching nothing."""
    shadow = shadow or model_version_shadowing()
    if shadow is None:
        return ScoreOutcome(listing_id, "no_shadow")
    listing = Listing.objects.select_related("category").filter(pk=listing_id).first()
    if listing is None:
        return ScoreOutcome(listing_id, "missing")
    if listing.status == Status.PENDING or not listing.content_hash:
        return ScoreOutcome(listing_id, "not_routed", listing.status)
    content_hash = listing.content_hash
    if ListingScore.objects.filter(
        listing=listing, content_hash=content_hash, model_version=shadow.version
    ).exists():
        return ScoreOutcome(listing_id, "exists", listing.status)
    try:
        assessment = listing_assess(listing, shadow, store_signals=False)
    except UnreadableImage as exc:
        return ScoreOutcome(listing_id, "failed", listing.status, str(exc))
    ListingScore.objects.get_or_create(
        listing=listing,
        content_hash=content_hash,
        model_version=shadow.version,
        defaults={
            "verdict": assessment.verdict,
            "similarity": assessment.similarity,
            "thresholds": shadow.thresholds_for(listing.category.name).as_dict(),
            "reasons": assessment.reasons,
            "images": assessment.images_as_dicts(),
            "shadow": True,
            "computed_at": timezone.now(),
        },
    )
    return ScoreOutcome(listing_id, "shadow_scored", listing.status)


def shadow_catalog_queue(
    *, model_version_id: int, batch_size: int = RESCORE_BATCH_SIZE
) -> RescoreReport:
    """Queue shadow scoring, in batches, of routed listings the candidate has not
    scored yet; nothing if it is no longer the shadow model."""
    report = RescoreReport(model_version_id)
    shadow = ModelVersion.objects.filter(is_shadow=True).first()
    if shadow is None or shadow.pk != model_version_id:
        report.skipped = "not the shadow model any more"
        return report
    done = ListingScore.objects.filter(
        model_version=shadow,
        listing=OuterRef("pk"),
        content_hash=OuterRef("content_hash"),
    )
    ids = list(
        Listing.objects.exclude(status=Status.PENDING)
        .exclude(Exists(done))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    report.batches = queue_batches(
        SHADOW_BATCH_TASK,
        model_version_id,
        ids,
        batch_size,
        f"shadow-{model_version_id}",
    )
    return report


def listings_shadow_batch(
    *, model_version_id: int, listing_ids: list[int]
) -> RescoreReport:
    """Shadow-score listings if the version is still the shadow model."""
    shadow = model_version_shadowing()
    return _score_batch(
        model_version_id=model_version_id,
        model=shadow,
        skipped="not the shadow model any more",
        listing_ids=listing_ids,
        score=partial(listing_score_shadow, shadow=shadow),
    )


def _score_batch(
    *,
    model_version_id: int,
    model: ActiveModel | None,
    skipped: str,
    listing_ids: list[int],
    score: Callable[..., ScoreOutcome],
) -> RescoreReport:
    """Score each listing with `score` while `model` is still the version the batch
    was queued for (else skip it all, saying why), counting the outcomes."""
    report = RescoreReport(model_version_id)
    if model is None or model.version.pk != model_version_id:
        report.skipped = skipped
        return report
    for listing_id in listing_ids:
        outcome = score(listing_id=listing_id).outcome
        report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
    return report
