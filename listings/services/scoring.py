"""Scoring a listing: the request when its content changes, the task that scores
it once and routes it, and what happens when scoring fails."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from clipmatch import conf
from clipmatch.inference.engine import ModelLoadError
from clipmatch.inference.images import UnreadableImage
from clipmatch.inference.scoring import Assessment
from clipmatch.models import ModelVersion
from clipmatch.services import ActiveModel, model_version_active
from listings.models import Listing, ListingDecision, ListingScore, ScoringAttempt
from listings.services.assessment import listing_assess
from listings.services.priority import review_priority
from listings.services.queueing import (
    after_commit,
    queue_scoring,
    queue_shadow_scoring,
)
from listings.services.transitions import (
    HUMAN_STATES,
    QUEUE_STATES,
    listing_locked,
    listing_transition,
)

logger = logging.getLogger(__name__)
Status = Listing.Status

VERDICT_STATUS = {
    ListingScore.Verdict.PASS: Status.PASSED,
    ListingScore.Verdict.REVIEW: Status.REVIEW,
    ListingScore.Verdict.HOLD: Status.HELD,
}


def listing_content_hash(*, listing: Listing) -> str:
    """Hash of everything the model looks at; equal hashes need no new model work."""
    digest = hashlib.sha256()
    for part in (listing.title, listing.description, listing.category.name):
        digest.update(part.encode("utf-8") + b"\x00")
    for image_hash in listing.images.values_list("content_hash", flat=True):
        digest.update(image_hash.encode("ascii") + b"\x00")
    return digest.hexdigest()


def _queue_if_current(listing_id: int, content_hash: str) -> None:
    # Several saves in one transaction each ask; only the last content is queued.
    current = Listing.objects.filter(
        pk=listing_id, content_hash=content_hash, status=Status.PENDING
    )
    if current.exists():
        queue_scoring(listing_id)


def listing_request_scoring(*, listing_id: int) -> bool:
    """Mark a listing pending if its content changed and queue scoring after commit.

    Runs inside the transaction that changed the content, so a listing is never
    left passed with content nobody checked. True when scoring was requested; an
    unchanged save requests nothing. If queueing fails after the commit, the
    reconciler finds the pending listing and queues it again.
    """
    with transaction.atomic():
        listing = listing_locked(listing_id)
        if listing is None:
            return False
        content_hash = listing_content_hash(listing=listing)
        if content_hash == listing.content_hash:
            return False
        listing.content_hash = content_hash
        listing.scoring_queued_at = timezone.now()
        listing.scoring_error = ""
        listing.score = None  # the last score was of other content
        listing.save(
            update_fields=[
                "content_hash",
                "scoring_queued_at",
                "scoring_error",
                "score",
            ]
        )
        if listing.status != Status.PENDING:
            listing_transition(
                listing=listing,
                to_status=Status.PENDING,
                reason_code="content_changed",
                reason="The title, description, category or images changed.",
            )
        after_commit(_queue_if_current, listing.pk, content_hash)
    return True


@dataclass
class ScoreOutcome:
    """What one run of the scoring task did."""

    listing_id: int
    outcome: str
    status: str | None = None
    detail: str = ""


def _worker_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def listing_score(*, listing_id: int) -> ScoreOutcome:
    """Score a pending listing's current content once and route it; safe to repeat."""
    with transaction.atomic():
        listing = listing_locked(listing_id)
        if listing is None:
            return ScoreOutcome(listing_id, "missing")
        if listing.status != Status.PENDING:
            return ScoreOutcome(listing_id, "not_pending", listing.status)
        if not listing.content_hash:  # a row loaded raw, never requested
            listing.content_hash = listing_content_hash(listing=listing)
            listing.save(update_fields=["content_hash"])
        content_hash = listing.content_hash
        busy = _busy(listing, timezone.now())
        if busy:
            return ScoreOutcome(listing_id, busy, listing.status)
        attempt = ScoringAttempt.objects.create(
            listing=listing,
            content_hash=content_hash,
            started_at=timezone.now(),
            worker=_worker_label(),
        )
    # The attempt row is committed before any slow work: if this worker dies now,
    # the reconciler sees a running attempt that never finished.
    try:
        active = model_version_active()
        assessment = listing_assess(listing, active)
    except UnreadableImage as exc:
        return _finish_failed(attempt, str(exc), permanent=True)
    except (ModelLoadError, ImproperlyConfigured) as exc:
        logger.error("Scoring listing %s failed: %s", listing_id, exc)
        return _finish_failed(
            attempt, f"{exc.__class__.__name__}: {exc}", permanent=False
        )
    except Exception as exc:  # a model or database error: retried, never passed
        logger.exception("Scoring listing %s failed", listing_id)
        return _finish_failed(
            attempt, f"{exc.__class__.__name__}: {exc}", permanent=False
        )
    return _finish_scored(attempt, active, assessment)


def _busy(listing: Listing, now: datetime) -> str:
    """Why a task for this content must not start now, or "" when it may."""
    attempts = ScoringAttempt.objects.filter(
        listing=listing, content_hash=listing.content_hash
    )
    stale_after = timedelta(seconds=conf.get("SCORING_STALE_AFTER"))
    if attempts.filter(
        outcome=ScoringAttempt.Outcome.RUNNING, started_at__gte=now - stale_after
    ).exists():
        return "already_running"
    last = attempts.first()
    if (
        last is not None
        and last.outcome == ScoringAttempt.Outcome.FAILED
        and last.retry_after
        and last.retry_after > now
    ):
        return "backing_off"
    return ""


def _still_current(
    attempt: ScoringAttempt, now: datetime, error: str = ""
) -> tuple[Listing | None, ScoreOutcome | None]:
    """Lock the attempt's listing if it still awaits this content, else say why not.

    Someone else may have finished first, or the content changed while the model
    worked: then the newer request has its own task and this attempt is closed.
    """
    listing = listing_locked(attempt.listing_id)
    if listing is None:
        return None, ScoreOutcome(attempt.listing_id, "missing")
    if listing.status != Status.PENDING or listing.content_hash != attempt.content_hash:
        attempt_close(attempt, ScoringAttempt.Outcome.SUPERSEDED, now, error)
        return None, ScoreOutcome(listing.pk, "superseded", listing.status)
    return listing, None


def _finish_scored(
    attempt: ScoringAttempt, active: ActiveModel, assessment: Assessment
) -> ScoreOutcome:
    now = timezone.now()
    with transaction.atomic():
        listing, done = _still_current(attempt, now)
        if done:
            return done
        if model_superseded(active):
            # Another version was activated while this one worked: score again
            # with the one in force rather than route by a replaced model.
            attempt_close(attempt, ScoringAttempt.Outcome.SUPERSEDED, now)
            after_commit(queue_scoring, listing.pk)
            return ScoreOutcome(listing.pk, "superseded", listing.status)
        audit = assessment.verdict == ListingScore.Verdict.PASS and (
            random.random() < conf.get("AUDIT_RATE")
        )
        to_status = listing_route(
            listing, active, assessment, attempt.content_hash, audit, now
        )
        attempt_close(attempt, ScoringAttempt.Outcome.SCORED, now)
        if ModelVersion.objects.filter(is_shadow=True).exists():
            after_commit(queue_shadow_scoring, listing.pk)
    return ScoreOutcome(listing.pk, "scored", to_status)


def model_superseded(active: ActiveModel) -> bool:
    """Whether another model version has been activated since ``active`` was
    resolved. Locks the version row, so an activation (which updates it) either
    commits before this check or waits for the caller's transaction."""
    still_active = (
        ModelVersion.objects.select_for_update()
        .filter(pk=active.version.pk)
        .values_list("is_active", flat=True)
        .first()
    )
    if active.version.is_active:
        return not still_active
    return ModelVersion.objects.filter(is_active=True).exists()


def listing_route(
    listing: Listing,
    active: ActiveModel,
    assessment: Assessment,
    content_hash: str,
    audit: bool,
    now: datetime,
    reason_code: str = "",
) -> str:
    """Store the score for this content and model, and move the listing to its band.

    A score for the same content and model is updated in place (a rescore after a
    threshold change): the constraint keeps exactly one per content and model.
    """
    reasons = list(assessment.reasons)
    if audit:
        reasons.append("Picked at random for an audit of passed listings.")
    to_status = Status.REVIEW if audit else VERDICT_STATUS[assessment.verdict]
    if to_status == Status.PASSED and _last_human_call_was_no(listing):
        # The model cannot see every reason a person rejected for (a prohibited
        # item, a misleading text): an edit goes back to a person, never live.
        to_status = Status.REVIEW
        reason_code = "edited_after_rejection"
        reasons.append(
            "Changed after a moderator rejected or escalated it: a person looks again."
        )
    score, _ = ListingScore.objects.update_or_create(
        listing=listing,
        content_hash=content_hash,
        model_version=active.version,
        defaults={
            "verdict": assessment.verdict,
            "similarity": assessment.similarity,
            "thresholds": active.thresholds_for(listing.category.name).as_dict(),
            "threshold_version": active.threshold_version,
            "shadow": False,
            "reasons": reasons,
            "images": assessment.images_as_dicts(),
            "audit_sample": audit,
            "computed_at": now,
        },
    )
    if to_status == listing.status:
        listing.score = score
        fields = ["score", "updated_at"]
        if listing.status in QUEUE_STATES and listing.queued_for_review_at:
            # Same place in the queue, a new estimate of the harm.
            listing.review_priority = review_priority(
                score=score,
                price=listing.price,
                entered=listing.queued_for_review_at,
                reason=listing.queue_reason,
            )
            fields.append("review_priority")
        listing.save(update_fields=fields)
        return to_status
    listing_transition(
        listing=listing,
        to_status=to_status,
        reason_code=reason_code
        or ("audit_sample" if audit else f"scored_{assessment.verdict}"),
        reason=" ".join(reasons),
        score=score,
    )
    return to_status


def _last_human_call_was_no(listing: Listing) -> bool:
    """Whether the last person to decide this listing rejected or escalated it
    (or the seller appealed a rejection), and nobody approved it since."""
    last = (
        ListingDecision.objects.filter(listing=listing, to_status__in=HUMAN_STATES)
        .order_by("-created_at", "-id")
        .values_list("to_status", flat=True)
        .first()
    )
    return last is not None and last != Status.APPROVED


def attempt_close(
    attempt: ScoringAttempt, outcome: str, now: datetime, error: str = ""
) -> None:
    attempt.outcome = outcome
    attempt.finished_at = now
    attempt.error = error
    attempt.save(update_fields=["outcome", "finished_at", "error", "retry_after"])


def attempt_failures(listing: Listing, content_hash: str) -> int:
    return ScoringAttempt.objects.filter(
        listing=listing,
        content_hash=content_hash,
        outcome__in=[ScoringAttempt.Outcome.FAILED, ScoringAttempt.Outcome.ABANDONED],
    ).count()


def _finish_failed(
    attempt: ScoringAttempt, error: str, *, permanent: bool
) -> ScoreOutcome:
    now = timezone.now()
    with transaction.atomic():
        listing, done = _still_current(attempt, now, error)
        if done:
            return done
        failures = attempt_failures(listing, attempt.content_hash) + 1
        if not permanent and failures < conf.get("SCORING_MAX_ATTEMPTS"):
            backoff = conf.get("SCORING_RETRY_BACKOFF") * 2 ** (failures - 1)
            attempt.retry_after = now + timedelta(seconds=backoff)
            attempt_close(attempt, ScoringAttempt.Outcome.FAILED, now, error)
            listing.scoring_error = error
            listing.save(update_fields=["scoring_error"])
            return ScoreOutcome(listing.pk, "retry", listing.status, error)
        attempt_close(attempt, ScoringAttempt.Outcome.FAILED, now, error)
        status = listing_quarantine(
            listing, error, failures=failures, permanent=permanent
        )
    return ScoreOutcome(listing.pk, "failed", status, error)


def listing_quarantine(
    listing: Listing, error: str, *, failures: int, permanent: bool
) -> str:
    """Send a listing that cannot be scored to a person, never to passed."""
    if permanent:
        reason = f"Scoring failed: {error}"
    else:
        reason = f"Scoring failed {failures} times; last error: {error}"
    listing.scoring_error = reason
    listing.save(update_fields=["scoring_error"])
    listing_transition(
        listing=listing,
        to_status=Status.REVIEW,
        reason_code="scoring_failed",
        reason=reason,
    )
    return Status.REVIEW
