"""Scoring a listing: the request when its content changes, the task that scores
it once and routes it, and what happens when scoring fails."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from clipmatch import conf
from clipmatch.inference.images import UnreadableImage
from clipmatch.inference.scoring import Assessment
from clipmatch.inference.sources import ModelLoadError
from clipmatch.models import ModelVersion
from clipmatch.services import ActiveModel, model_version_active
from listings.models import Listing, ListingDecision, ListingScore, ScoringAttempt
from listings.services.assessment import Content, contents_assess, listing_content
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
    """Score a pending listing's current content once and route it; safe to repeat.

    The task also claims up to CLIPMATCH_SCORING_BATCH_LISTINGS - 1 other pending
    listings that nobody is scoring and scores them all with one forward per
    tower; their own queued tasks then find them routed (or running) and do
    nothing. No listing waits for a batch to fill: a task takes what is there.
    """
    attempts, done = _claim(listing_id)
    if done:
        return done
    outcomes = _score_claimed(attempts)
    return outcomes[0]


def _nothing_to_do(listing_id: int) -> ScoreOutcome | None:
    """Why a task has nothing to do, read without a lock or a write transaction;
    None when it may have (`_claim` decides under the lock).

    Most tasks find their listing already routed or being scored by a batch-mate's
    task; reading that takes no lock, where `_claim`'s transaction takes the
    database's write lock on SQLite and the listing's row on PostgreSQL. Each
    answer stays true once read: a listing leaves PENDING only with its content
    routed (an edit that makes it pending again queues a task of its own), and a
    running attempt is finished by its worker or, if that worker dies, by the
    reconciler."""
    return _not_now(listing_id, Listing.objects.filter(pk=listing_id).first())


def _not_now(listing_id: int, listing: Listing | None) -> ScoreOutcome | None:
    """Why the task for this listing must not score it now (gone, not pending,
    its content running or backing off), or None."""
    if listing is None:
        return ScoreOutcome(listing_id, "missing")
    if listing.status != Status.PENDING:
        return ScoreOutcome(listing_id, "not_pending", listing.status)
    busy = _busy(listing, timezone.now()) if listing.content_hash else ""
    return ScoreOutcome(listing_id, busy, listing.status) if busy else None


def _claim(listing_id: int) -> tuple[list[ScoringAttempt], ScoreOutcome | None]:
    """Record an attempt for the listing and for the batch-mates it claims, and
    commit them before any slow work: if this worker dies now, the reconciler sees
    running attempts that never finished."""
    done = _nothing_to_do(listing_id)
    if done is not None:
        return [], done
    with transaction.atomic():
        listing = listing_locked(listing_id)
        pending = listing is not None and listing.status == Status.PENDING
        if pending and not listing.content_hash:  # a row loaded raw, never requested
            listing.content_hash = listing_content_hash(listing=listing)
            listing.save(update_fields=["content_hash"])
        done = _not_now(listing_id, listing)
        if done is not None:
            return [], done
        now = timezone.now()
        listings = [listing, *_claim_mates(listing_id, now)]
        # One worker label and start for the whole batch: the reconciler tells a
        # batch's attempts by them when its task is reported failed.
        worker = _worker_label()
        attempts = [
            ScoringAttempt.objects.create(
                listing=member,
                content_hash=member.content_hash,
                started_at=now,
                worker=worker,
            )
            for member in listings
        ]
    return attempts, None


def _claim_mates(listing_id: int, now: datetime) -> list[Listing]:
    """Up to N-1 other pending listings whose content no worker is scoring, oldest
    request first, locked for the caller's transaction; no more than this task's
    fair share of what is waiting (`_batch_limit`).

    On PostgreSQL SKIP LOCKED passes over rows another worker is claiming (two
    workers never claim the same listing); SQLite runs one writer at a time. Each
    is checked again under its lock as its own task would check it.
    """
    most = conf.get("SCORING_BATCH_LISTINGS") - 1
    if most < 1:
        return []
    stale = now - timedelta(seconds=conf.get("SCORING_STALE_AFTER"))
    same_content = ScoringAttempt.objects.filter(
        listing=OuterRef("pk"), content_hash=OuterRef("content_hash")
    )
    claimable = (
        Listing.objects.filter(status=Status.PENDING)
        .exclude(pk=listing_id)
        .exclude(content_hash="")
        .exclude(
            Exists(
                same_content.filter(
                    outcome=ScoringAttempt.Outcome.RUNNING, started_at__gte=stale
                )
            )
        )
        .exclude(
            Exists(
                same_content.filter(
                    outcome=ScoringAttempt.Outcome.FAILED, retry_after__gt=now
                )
            )
        )
    )
    limit = _batch_limit(claimable, most)
    candidates = (
        claimable.select_for_update(skip_locked=True, of=("self",))
        .select_related("category")
        .order_by(F("scoring_queued_at").asc(nulls_last=True), "pk")[:limit]
    )
    max_attempts = conf.get("SCORING_MAX_ATTEMPTS")
    # One that failed too often is the reconciler's to quarantine, not to retry.
    return [
        mate
        for mate in candidates
        if not _busy(mate, now)
        and attempt_failures(mate, mate.content_hash) < max_attempts
    ]


def _batch_limit(claimable, most: int) -> int:
    """How many batch-mates this task takes: at most `most`, and no more than its
    fair share of what waits (this one and the claimable others, counted up to a
    batch per worker) among the cluster's workers, so that a burst is split
    between the workers rather than left to the first ones: 32 waiting on 2
    workers go 8, 8, 8, 4, 2, 1, 1 instead of 8, 8, 8, 8 with one worker idle
    while the other scores the last batch."""
    workers = max(1, settings.Q_CLUSTER.get("workers") or 1)
    waiting = 1 + claimable[: (most + 1) * workers].count()
    return min(most, -(-waiting // workers) - 1)


def _score_claimed(attempts: list[ScoringAttempt]) -> list[ScoreOutcome]:
    """Score the claimed contents together and finish each attempt on its own: a
    failure fails only the listing that caused it. If the batched forward itself
    raises, each member is tried again alone, so a model error fails each with
    its own error (retried, never passed) and a member that only failed beside
    others is scored."""
    try:
        active = model_version_active()
    except Exception as exc:
        return _finish_all(attempts, [exc] * len(attempts), None)
    results: list[Assessment | Exception | None] = [None] * len(attempts)
    contents = {}
    for n, attempt in enumerate(attempts):
        try:
            contents[n] = listing_content(attempt.listing)
        except Exception as exc:  # a file storage cannot read: this listing only
            results[n] = exc
    try:
        assessed = contents_assess(list(contents.values()), active)
    except Exception as exc:
        if len(contents) == 1:
            assessed = [exc]
        else:
            logger.warning(
                "Scoring %d listings together failed (%s); scoring each alone.",
                len(contents),
                exc,
            )
            assessed = [_assess_alone(content, active) for content in contents.values()]
    for n, result in zip(contents, assessed, strict=True):
        results[n] = result
    return _finish_all(attempts, results, active)


def _assess_alone(content: Content, active: ActiveModel) -> Assessment | Exception:
    try:
        return contents_assess([content], active)[0]
    except Exception as exc:
        return exc


def _finish_all(
    attempts: list[ScoringAttempt],
    results: list[Assessment | Exception | None],
    active: ActiveModel | None,
) -> list[ScoreOutcome]:
    """Close each attempt by its result. An error while finishing one (the
    database) does not stop the others; the first such error is raised after all,
    so that the task is recorded as failed."""
    outcomes, error = [], None
    for attempt, result in zip(attempts, results, strict=True):
        try:
            outcomes.append(_finish(attempt, result, active))
        except Exception as exc:
            logger.exception("Finishing listing %s failed", attempt.listing_id)
            error = error or exc
    if error is not None:
        raise error
    return outcomes


def _finish(
    attempt: ScoringAttempt, result: Assessment | Exception, active: ActiveModel | None
) -> ScoreOutcome:
    listing_id = attempt.listing_id
    if isinstance(result, Assessment):
        return _finish_scored(attempt, active, result)
    if isinstance(result, UnreadableImage):
        return _finish_failed(attempt, str(result), permanent=True)
    if isinstance(result, (ModelLoadError, ImproperlyConfigured)):
        logger.error("Scoring listing %s failed: %s", listing_id, result)
    else:  # a model or database error: retried, never passed
        logger.error("Scoring listing %s failed", listing_id, exc_info=result)
    return _finish_failed(
        attempt, f"{result.__class__.__name__}: {result}", permanent=False
    )


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
    to_status, reasons, reason_code = route_plan(
        listing, assessment, audit, _last_human_call_was_no, reason_code
    )
    score, _ = ListingScore.objects.update_or_create(
        listing=listing,
        content_hash=content_hash,
        model_version=active.version,
        defaults=score_values(listing, active, assessment, reasons, audit, now),
    )
    if to_status == listing.status:
        fields = ["score", "updated_at"]
        if listing_keep_place(listing, score):
            fields.append("review_priority")
        listing.save(update_fields=fields)
        return to_status
    listing_transition(
        listing=listing,
        to_status=to_status,
        reason_code=reason_code,
        reason=" ".join(reasons),
        score=score,
    )
    return to_status


def listing_keep_place(listing: Listing, score: ListingScore) -> bool:
    """Put a new score on a listing that stays where it is; True when that gave it
    a new review priority (the caller saves)."""
    listing.score = score
    if listing.status in QUEUE_STATES and listing.queued_for_review_at:
        # Same place in the queue, a new estimate of the harm.
        listing.review_priority = review_priority(
            score=score,
            price=listing.price,
            entered=listing.queued_for_review_at,
            reason=listing.queue_reason,
        )
        return True
    return False


def route_plan(
    listing: Listing,
    assessment: Assessment,
    audit: bool,
    said_no: Callable[[Listing], bool],
    reason_code: str = "",
) -> tuple[str, list[str], str]:
    """Where an assessment sends a listing: (status, reasons, reason code).
    `said_no` tells whether a person's last call on the listing was no."""
    reasons = list(assessment.reasons)
    if audit:
        reasons.append("Picked at random for an audit of passed listings.")
    to_status = Status.REVIEW if audit else VERDICT_STATUS[assessment.verdict]
    if to_status == Status.PASSED and said_no(listing):
        # The model cannot see every reason a person rejected for (a prohibited
        # item, a misleading text): an edit goes back to a person, never live.
        to_status = Status.REVIEW
        reason_code = "edited_after_rejection"
        reasons.append(
            "Changed after a moderator rejected or escalated it: a person looks again."
        )
    reason_code = reason_code or (
        "audit_sample" if audit else f"scored_{assessment.verdict}"
    )
    return to_status, reasons, reason_code


def score_values(
    listing: Listing,
    active: ActiveModel,
    assessment: Assessment,
    reasons: list[str],
    audit: bool,
    now: datetime,
) -> dict:
    """The fields of a routing score for this content and model."""
    return {
        "verdict": assessment.verdict,
        "similarity": assessment.similarity,
        "thresholds": active.thresholds_for(listing.category.name).as_dict(),
        "threshold_version": active.threshold_version,
        "shadow": False,
        "reasons": reasons,
        "images": assessment.images_as_dicts(),
        "audit_sample": audit,
        "computed_at": now,
    }


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
