"""Writes for listings: the status machine, scoring and reconciling."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from clipmatch import conf
from clipmatch.images import decode_image
from clipmatch.inference.engine import ModelLoadError
from clipmatch.inference.images import UnreadableImage, sha256_hex
from clipmatch.inference.scoring import (
    FIELDS,
    Assessment,
    assess,
    best_chunk_similarity,
    rank_categories,
)
from clipmatch.models import ModelVersion, ThresholdVersion
from clipmatch.services import (
    ActiveModel,
    category_vectors,
    embeddings_images,
    embeddings_texts,
    model_version_active,
    model_version_shadowing,
    prompt_templates_for,
    threshold_version_propose,
)
from listings.models import (
    Category,
    Listing,
    ListingAppeal,
    ListingDecision,
    ListingImage,
    ListingScore,
    ReviewClaim,
    ScoringAttempt,
)
from listings.webhooks.services import webhooks_record_decision

logger = logging.getLogger(__name__)
Status = Listing.Status

SYSTEM_STATES = {Status.PENDING, Status.PASSED, Status.REVIEW, Status.HELD}
# States only a person can move a listing into.
HUMAN_STATES = {Status.APPROVED, Status.REJECTED, Status.ESCALATED, Status.APPEALED}
# States in which a listing waits in the review queue for a moderator.
QUEUE_STATES = {Status.REVIEW, Status.HELD, Status.ESCALATED, Status.APPEALED}
_DECIDED = {Status.APPROVED, Status.REJECTED}
# from -> the states a change may lead to. The system routes and re-routes, and
# sends changed content back to PENDING; moderators decide, escalate; sellers appeal.
TRANSITIONS: dict[str, set[str]] = {
    Status.PENDING: {Status.PASSED, Status.REVIEW, Status.HELD},
    Status.PASSED: {Status.PENDING, Status.REVIEW, Status.HELD},
    Status.REVIEW: {Status.PENDING, Status.PASSED, Status.HELD, Status.ESCALATED}
    | _DECIDED,
    Status.HELD: {Status.PENDING, Status.PASSED, Status.REVIEW, Status.ESCALATED}
    | _DECIDED,
    Status.ESCALATED: {Status.PENDING} | _DECIDED,
    Status.APPROVED: {Status.PENDING},
    Status.REJECTED: {Status.PENDING, Status.APPEALED},
    Status.APPEALED: {Status.PENDING} | _DECIDED,
}
VERDICT_STATUS = {
    ListingScore.Verdict.PASS: Status.PASSED,
    ListingScore.Verdict.REVIEW: Status.REVIEW,
    ListingScore.Verdict.HOLD: Status.HELD,
}
SCORE_TASK = "listings.tasks.score_listing"


class CalibrationError(Exception):
    """Not enough or not the right decisions to propose thresholds from."""


class TransitionNotAllowed(Exception):
    """A status change that the state machine forbids from the current state."""


def listing_content_hash(*, listing: Listing) -> str:
    """Hash of everything the model looks at; equal hashes need no new model work."""
    digest = hashlib.sha256()
    for part in (listing.title, listing.description, listing.category.name):
        digest.update(part.encode("utf-8") + b"\x00")
    for image_hash in listing.images.values_list("content_hash", flat=True):
        digest.update(image_hash.encode("ascii") + b"\x00")
    return digest.hexdigest()


def listing_transition(
    *,
    listing: Listing,
    to_status: str,
    actor=None,
    reason_code: str,
    reason: str = "",
    score: ListingScore | None = None,
    expected_status: str | None = None,
) -> ListingDecision:
    """Move a listing to a new status and write its audit row, in one transaction.

    The status in the database decides, not the one on the instance passed in: a
    decision made on a page loaded before the listing changed is refused.
    """
    with transaction.atomic():
        current = _locked(listing.pk)
        if current is None:
            raise Listing.DoesNotExist(f"Listing {listing.pk} no longer exists.")
        from_status = current.status
        if expected_status is not None and from_status != expected_status:
            raise TransitionNotAllowed(
                f"The listing is {from_status} now, no longer {expected_status}."
            )
        if to_status not in TRANSITIONS.get(from_status, set()):
            raise TransitionNotAllowed(
                f"A listing cannot go from {from_status} to {to_status}."
            )
        if to_status in HUMAN_STATES and actor is None:
            raise TransitionNotAllowed(
                f"Only a person can move a listing to {to_status}."
            )
        now = timezone.now()
        listing.status = to_status
        fields = ["status", "updated_at", *_QUEUE_FIELDS]
        if score is not None:
            listing.score = score
            fields.append("score")
        # The score the listing stands on, for the audit row: the one passed in when
        # the system routes, the current one when a person decides.
        basis = score or current.score
        queued_at = (
            current.queued_for_review_at if from_status in QUEUE_STATES else None
        )
        if to_status in QUEUE_STATES:
            # The model re-routing between review and held keeps the stay's entry
            # time and whoever holds it; an escalation or an appeal starts anew.
            rerouted = {from_status, to_status} <= {Status.REVIEW, Status.HELD}
            entered = queued_at if rerouted and queued_at else now
            listing.queued_for_review_at = entered
            listing.queue_reason = reason_code
            listing.review_priority = review_priority(
                score=basis, price=current.price, entered=entered, reason=reason_code
            )
            listing.claimed_by_id = current.claimed_by_id if rerouted else None
            listing.claimed_until = current.claimed_until if rerouted else None
            if not rerouted:
                _claims_lost(listing.pk, now)
        else:
            _leave_queue(listing, now)
        listing.save(update_fields=fields)
        decision = ListingDecision.objects.create(
            listing=listing,
            actor=actor,
            from_status=from_status,
            to_status=to_status,
            reason_code=reason_code,
            reason=reason,
            model_version=str(basis.model_version) if basis else "",
            score=basis.similarity if basis else None,
            thresholds=basis.thresholds if basis else {},
            model_verdict=basis.verdict if basis else "",
            queued_at=queued_at,
        )
        # Recorded with the decision, sent after commit.
        webhooks_record_decision(decision=decision)
        return decision


def _leave_queue(listing: Listing, now: datetime) -> None:
    """Clear the queue fields (the caller saves _QUEUE_FIELDS); whoever held the
    listing loses the claim."""
    listing.queued_for_review_at = None
    listing.queue_reason = ""
    listing.review_priority = 0.0
    listing.claimed_by = None
    listing.claimed_until = None
    _claims_lost(listing.pk, now)


def _claims_lost(listing_id: int, now: datetime) -> None:
    """Whoever still held the listing lost it: it left their part of the queue."""
    ReviewClaim.objects.filter(
        listing_id=listing_id, outcome=ReviewClaim.Outcome.OPEN
    ).update(outcome=ReviewClaim.Outcome.LOST, ended_at=now)


_QUEUE_FIELDS = [
    "queued_for_review_at",
    "queue_reason",
    "review_priority",
    "claimed_by",
    "claimed_until",
]


def mismatch_probability(*, score: ListingScore | None, reason: str = "") -> float:
    """How likely the listing's photos and words disagree, from its score alone.

    Each field's similarity is placed between its hold and pass thresholds: at the
    hold cut-off the estimate is 0.88, at the pass cut-off 0.12, on a logistic
    curve. The worst image and field decide. No score (scoring failed), an audit
    sample, an appeal or a wrong category count as at least even odds: a person
    must look, whatever the similarities say.
    """
    floor = 0.5 if score is None or reason in _EVEN_ODDS else 0.0
    if score is None:
        return floor
    if score.audit_sample:
        floor = 0.5
    thresholds = score.thresholds or {}
    margins = []
    for image in score.images or []:
        if not image.get("category_ok", True):
            floor = max(floor, 0.5)
        for name in ("title", "description"):
            cut = thresholds.get(name)
            sim = image.get(name)
            if sim is None or not cut:
                continue
            half = max((cut["pass"] - cut["hold"]) / 2, 1e-3)
            margins.append((sim - (cut["pass"] + cut["hold"]) / 2) / half)
    if not margins:
        return max(floor, 0.5)
    exponent = min(max(2.0 * min(margins), -60.0), 60.0)
    return max(floor, 1.0 / (1.0 + math.exp(exponent)))


_EVEN_ODDS = {"appeal", "scoring_failed", "audit_sample", "edited_after_rejection"}


def review_priority(
    *, score: ListingScore | None, price: Decimal, entered: datetime, reason: str = ""
) -> float:
    """A queue position that orders listings by expected harm now.

    Harm = P(mismatch) x exposure x e^(waiting / aging period), with exposure
    log10(10 + price): a 990 item weighs 3, a free one 1. Its log is
    ln(P x exposure) + now/T - entered/T, and now/T is the same for every row, so
    the stored constant ln(P x exposure) - entered/T sorts the queue as harm
    does at any moment, with a plain index and no arithmetic on dates in SQL.
    """
    p = max(mismatch_probability(score=score, reason=reason), 1e-6)
    exposure = math.log10(10 + float(price or 0))
    aging = conf.get("REVIEW_AGING_HOURS") * 3600
    return math.log(p * exposure) - entered.timestamp() / aging


def _locked(listing_id: int) -> Listing | None:
    return (
        # of=("self",): on PostgreSQL, lock the listing, not its category's row.
        Listing.objects.select_for_update(of=("self",))
        .select_related("category")
        .filter(pk=listing_id)
        .first()
    )


def _queue(listing_id: int) -> None:
    from django_q.tasks import async_task

    async_task(SCORE_TASK, listing_id, task_name=f"score-listing-{listing_id}")


def _queue_if_current(listing_id: int, content_hash: str) -> None:
    # Several saves in one transaction each ask; only the last content is queued.
    current = Listing.objects.filter(
        pk=listing_id, content_hash=content_hash, status=Status.PENDING
    )
    if current.exists():
        _queue(listing_id)


def listing_request_scoring(*, listing_id: int) -> bool:
    """Mark a listing pending if its content changed and queue scoring after commit.

    Runs inside the transaction that changed the content, so a listing is never
    left passed with content nobody checked. True when scoring was requested; an
    unchanged save requests nothing. If queueing fails after the commit, the
    reconciler finds the pending listing and queues it again.
    """
    with transaction.atomic():
        listing = _locked(listing_id)
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
        transaction.on_commit(
            partial(_queue_if_current, listing.pk, content_hash), robust=True
        )
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
        listing = _locked(listing_id)
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
        assessment = _assess(listing, active)
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


class ImageStorageError(RuntimeError):
    """An image file could not be read from storage: worth a retry."""


def _assess(listing: Listing, active: ActiveModel) -> Assessment:
    images = []
    for number, image in enumerate(listing.images.all(), start=1):
        try:
            with image.image.open("rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ImageStorageError(
                f"Image {number}: the file cannot be read ({exc})."
            ) from exc
        images.append(data)
    return content_assess(
        title=listing.title,
        description=listing.description,
        category_name=listing.category.name,
        images=images,
        active=active,
    )


def content_assess(
    *,
    title: str,
    description: str,
    category_name: str,
    images: list[bytes],
    active: ActiveModel,
) -> Assessment:
    """Score images against a title, a description and the categories: the one
    scorer behind both a stored listing's check and the API's pre-publish check.

    Embeddings are cached by content hash, so a checked photo submitted later as a
    listing costs no second model run.
    """
    texts = [title] + ([description] if description else [])
    # Keyed by the bytes read now, not a stored hash: a file replaced behind the
    # ORM's back can never borrow another image's cached vector.
    keyed = [
        (sha256_hex(data), partial(_decode, number, data))
        for number, data in enumerate(images, start=1)
    ]
    engine = active.engine
    image_vectors = embeddings_images(
        version=active.version, images=keyed, engine=engine
    )
    text_vectors = embeddings_texts(version=active.version, texts=texts, engine=engine)
    names = list(Category.objects.filter(active=True).values_list("name", flat=True))
    if category_name not in names:
        names.append(category_name)
    classes = category_vectors(
        version=active.version,
        names=names,
        templates=prompt_templates_for(active.source),
        engine=engine,
    )
    title_sims, description_sims, rankings = [], [], []
    for vector in image_vectors:
        title_sims.append(best_chunk_similarity(vector, text_vectors[0]))
        description_sims.append(
            best_chunk_similarity(vector, text_vectors[1]) if len(texts) > 1 else None
        )
        rankings.append(rank_categories(vector, names, classes))
    return assess(
        title_sims=title_sims,
        description_sims=description_sims,
        category_rankings=rankings,
        listed_category=category_name,
        thresholds=active.thresholds_for(category_name),
    )


def _decode(number: int, data: bytes):
    try:
        return decode_image(data).image
    except UnreadableImage as exc:
        raise UnreadableImage(f"Image {number}: {exc}") from exc


def _still_current(
    attempt: ScoringAttempt, now: datetime, error: str = ""
) -> tuple[Listing | None, ScoreOutcome | None]:
    """Lock the attempt's listing if it still awaits this content, else say why not.

    Someone else may have finished first, or the content changed while the model
    worked: then the newer request has its own task and this attempt is closed.
    """
    listing = _locked(attempt.listing_id)
    if listing is None:
        return None, ScoreOutcome(attempt.listing_id, "missing")
    if listing.status != Status.PENDING or listing.content_hash != attempt.content_hash:
        _close(attempt, ScoringAttempt.Outcome.SUPERSEDED, now, error)
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
        if _model_superseded(active):
            # Another version was activated while this one worked: score again
            # with the one in force rather than route by a replaced model.
            _close(attempt, ScoringAttempt.Outcome.SUPERSEDED, now)
            transaction.on_commit(partial(_queue, listing.pk), robust=True)
            return ScoreOutcome(listing.pk, "superseded", listing.status)
        audit = assessment.verdict == ListingScore.Verdict.PASS and (
            random.random() < conf.get("AUDIT_RATE")
        )
        to_status = _route(
            listing, active, assessment, attempt.content_hash, audit, now
        )
        _close(attempt, ScoringAttempt.Outcome.SCORED, now)
        if ModelVersion.objects.filter(is_shadow=True).exists():
            transaction.on_commit(partial(_queue_shadow, listing.pk), robust=True)
    return ScoreOutcome(listing.pk, "scored", to_status)


def _model_superseded(active: ActiveModel) -> bool:
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


def _route(
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
        assessment = _assess(listing, active)
    except ImageStorageError as exc:  # storage trouble: this listing, not the batch
        logger.warning("Rescoring listing %s: %s", listing_id, exc)
        return ScoreOutcome(listing_id, "failed", listing.status, str(exc))
    except UnreadableImage as exc:
        with transaction.atomic():
            listing = _locked(listing_id)
            if listing.status != status or listing.content_hash != content_hash:
                return ScoreOutcome(listing_id, "superseded", listing.status)
            if listing.status in (Status.REVIEW, Status.HELD):
                # Already in front of a person; a held listing stays held.
                listing.scoring_error = f"Rescoring failed: {exc}"
                listing.save(update_fields=["scoring_error"])
                return ScoreOutcome(listing_id, "failed", listing.status, str(exc))
            to_status = _quarantine(listing, str(exc), failures=1, permanent=True)
        return ScoreOutcome(listing_id, "failed", to_status, str(exc))
    with transaction.atomic():
        listing = _locked(listing_id)
        if listing.status != status or listing.content_hash != content_hash:
            return ScoreOutcome(listing_id, "superseded", listing.status)
        if _model_superseded(active):
            return ScoreOutcome(listing_id, "superseded", listing.status)
        previous = listing.score
        audit = bool(
            previous
            and previous.audit_sample
            and assessment.verdict == ListingScore.Verdict.PASS
        )
        to_status = _route(
            listing, active, assessment, content_hash, audit, timezone.now(), "rescored"
        )
    return ScoreOutcome(listing_id, "rescored", to_status)


def _close(
    attempt: ScoringAttempt, outcome: str, now: datetime, error: str = ""
) -> None:
    attempt.outcome = outcome
    attempt.finished_at = now
    attempt.error = error
    attempt.save(update_fields=["outcome", "finished_at", "error", "retry_after"])


def _failures(listing: Listing, content_hash: str) -> int:
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
        failures = _failures(listing, attempt.content_hash) + 1
        if not permanent and failures < conf.get("SCORING_MAX_ATTEMPTS"):
            backoff = conf.get("SCORING_RETRY_BACKOFF") * 2 ** (failures - 1)
            attempt.retry_after = now + timedelta(seconds=backoff)
            _close(attempt, ScoringAttempt.Outcome.FAILED, now, error)
            listing.scoring_error = error
            listing.save(update_fields=["scoring_error"])
            return ScoreOutcome(listing.pk, "retry", listing.status, error)
        _close(attempt, ScoringAttempt.Outcome.FAILED, now, error)
        status = _quarantine(listing, error, failures=failures, permanent=permanent)
    return ScoreOutcome(listing.pk, "failed", status, error)


def _quarantine(listing: Listing, error: str, *, failures: int, permanent: bool) -> str:
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


@dataclass
class ReconcileReport:
    """What one pass of the reconciler found and did, by listing id."""

    requeued: list[int] = field(default_factory=list)
    abandoned: list[int] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)


def scoring_reconcile(
    *, now: datetime | None = None, limit: int = 500
) -> ReconcileReport:
    """Re-queue pending listings whose task was lost, died or is due for a retry.

    The queue can lose a task (Redis) or re-run it forever (the ORM broker): the
    database says what still needs scoring, and this pass acts on it.
    """
    now = now or timezone.now()
    stale_after = timedelta(seconds=conf.get("SCORING_STALE_AFTER"))
    max_attempts = conf.get("SCORING_MAX_ATTEMPTS")
    report = ReconcileReport()
    pending = Listing.objects.filter(status=Status.PENDING).order_by(
        F("scoring_queued_at").asc(nulls_first=True), "pk"
    )
    for listing_id in pending.values_list("pk", flat=True)[:limit]:
        with transaction.atomic():
            listing = _locked(listing_id)
            if listing is None or listing.status != Status.PENDING:
                continue
            attempts = ScoringAttempt.objects.filter(
                listing=listing, content_hash=listing.content_hash
            )
            running = attempts.filter(outcome=ScoringAttempt.Outcome.RUNNING)
            for attempt in running:
                if attempt.started_at < now - stale_after:
                    _close(
                        attempt,
                        ScoringAttempt.Outcome.ABANDONED,
                        now,
                        "The worker stopped before it finished (killed or timed out).",
                    )
                    report.abandoned.append(listing.pk)
            if running.filter(started_at__gte=now - stale_after).exists():
                report.waiting.append(listing.pk)
                continue
            failures = _failures(listing, listing.content_hash)
            if failures >= max_attempts:
                last = attempts.exclude(error="").first()
                _quarantine(
                    listing,
                    last.error if last else "unknown error",
                    failures=failures,
                    permanent=False,
                )
                report.quarantined.append(listing.pk)
                continue
            last = attempts.first()
            queued = listing.scoring_queued_at
            if (
                last is not None
                and last.outcome == ScoringAttempt.Outcome.FAILED
                and last.retry_after
                and last.retry_after > now
            ):
                report.waiting.append(listing.pk)  # backing off
                continue
            if (
                queued
                and queued >= now - stale_after
                and (last is None or queued > last.started_at)
            ):
                # Queued since the last attempt and not picked up yet: give the queue
                # its time rather than piling up duplicates.
                report.waiting.append(listing.pk)
                continue
            listing.scoring_queued_at = now
            listing.save(update_fields=["scoring_queued_at"])
            transaction.on_commit(partial(_queue, listing.pk), robust=True)
            report.requeued.append(listing.pk)
    return report


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


RECONCILER = "clipmatch: reconcile scoring"


def schedules_ensure() -> tuple[object, bool]:
    """Create or update the reconciler's django-q2 schedule; (schedule, created)."""
    from django_q.models import Schedule

    return Schedule.objects.update_or_create(
        name=RECONCILER,
        defaults={
            "func": "listings.tasks.reconcile_scoring",
            "schedule_type": Schedule.MINUTES,
            "minutes": conf.get("RECONCILE_EVERY_MINUTES"),
            "repeats": -1,
        },
    )


# --- The review queue: claims, decisions, appeals ------------------------------------


class StaleDecision(TransitionNotAllowed):
    """A decision made on a view of the listing that is no longer true."""


class ClaimLost(Exception):
    """The moderator no longer holds the claim they act on."""


class DecisionNotAllowed(Exception):
    """The moderator may not make this decision (permission or conflict of interest)."""


class AppealNotAllowed(Exception):
    """The listing cannot be appealed now, or not by this user."""


@dataclass(frozen=True)
class ReviewFilters:
    """What a moderator narrowed the queue to; empty values mean everything."""

    category: int | None = None
    band: str = ""
    reason: str = ""
    model_version: int | None = None


DECISIONS = {
    "approve": Status.APPROVED,
    "reject": Status.REJECTED,
    "escalate": Status.ESCALATED,
}


def reject_reasons() -> dict[str, str]:
    """The configured reasons a moderator rejects for, code -> label."""
    return {code: label for code, label in conf.get("REJECT_REASONS")}


def review_claim_next(
    *, moderator, filters: ReviewFilters | None = None, now: datetime | None = None
) -> Listing | None:
    """Hand the moderator the most urgent unclaimed item, claimed for a lease.

    An item they already hold comes back first (a reload, a second tab). The claim
    is a conditional UPDATE (only if nobody holds it or their lease ran out), which
    PostgreSQL re-checks under the row lock and SQLite runs one writer at a time:
    two moderators asking at the same moment never get the same listing, on either
    database, with no lock held while the queue is read.
    """
    from listings.selectors import review_queue, review_states

    now = now or timezone.now()
    held = (
        Listing.objects.filter(
            claimed_by=moderator,
            claimed_until__gte=now,
            status__in=review_states(moderator),
            deleted_at__isnull=True,
        )
        .order_by("claimed_until")
        .values_list("pk", flat=True)
        .first()
    )
    if held is not None:
        return review_claim(listing_id=held, moderator=moderator, now=now)
    for _ in range(5):  # each round loses only to moderators who won a race
        candidates = list(
            review_queue(moderator=moderator, filters=filters, now=now)
            .exclude(claimed_by=moderator)
            .values_list("pk", flat=True)[:10]
        )
        if not candidates:
            return None
        for listing_id in candidates:
            try:
                return review_claim(listing_id=listing_id, moderator=moderator, now=now)
            except ClaimLost:
                continue
    return None


def review_claim(*, listing_id: int, moderator, now: datetime | None = None) -> Listing:
    """Claim (or renew the claim on) one queue item for the moderator's lease."""
    from listings.selectors import review_states

    now = now or timezone.now()
    until = now + timedelta(seconds=conf.get("REVIEW_LEASE_SECONDS"))
    with transaction.atomic():
        free = Q(claimed_by__isnull=True) | Q(claimed_until__lt=now)
        taken = (
            Listing.objects.filter(
                pk=listing_id,
                status__in=review_states(moderator),
                deleted_at__isnull=True,
            )
            .exclude(seller=moderator)
            .filter(free | Q(claimed_by=moderator))
            .update(claimed_by=moderator, claimed_until=until)
        )
        if not taken:
            raise ClaimLost(_claim_lost_message(listing_id, moderator, now))
        claims = ReviewClaim.objects.filter(
            listing_id=listing_id, outcome=ReviewClaim.Outcome.OPEN
        )
        mine = claims.filter(moderator=moderator).first()
        # Someone else's open claim here has lapsed, or we could not have taken it.
        claims.exclude(moderator=moderator).update(
            outcome=ReviewClaim.Outcome.EXPIRED, ended_at=now
        )
        if mine:
            mine.expires_at = until
            mine.save(update_fields=["expires_at"])
        else:
            ReviewClaim.objects.create(
                listing_id=listing_id,
                moderator=moderator,
                claimed_at=now,
                expires_at=until,
            )
    return Listing.objects.select_related("category", "seller", "score").get(
        pk=listing_id
    )


def _claim_lost_message(listing_id: int, moderator, now: datetime) -> str:
    listing = Listing.objects.select_related("claimed_by").filter(pk=listing_id).first()
    if listing is None:
        return "The listing no longer exists."
    if listing.deleted_at is not None:
        return "The seller deleted this listing."
    if listing.seller_id == moderator.pk:
        return "This is your own listing: someone else reviews it."
    if listing.status not in QUEUE_STATES:
        return f"The listing is no longer in the queue (it is {listing.status} now)."
    if listing.claimed_by and listing.claimed_until and listing.claimed_until >= now:
        return f"{listing.claimed_by.get_username()} is reviewing this listing."
    return "This listing is not in your queue."


def review_release(
    *, listing_id: int, moderator, skipped: bool = True, now: datetime | None = None
) -> bool:
    """Give a claimed item back to the queue; a skip keeps it from this moderator
    for a while. False when they no longer held it."""
    now = now or timezone.now()
    with transaction.atomic():
        released = Listing.objects.filter(pk=listing_id, claimed_by=moderator).update(
            claimed_by=None, claimed_until=None
        )
        ReviewClaim.objects.filter(
            listing_id=listing_id, moderator=moderator, outcome=ReviewClaim.Outcome.OPEN
        ).update(
            outcome=ReviewClaim.Outcome.SKIPPED
            if skipped
            else ReviewClaim.Outcome.RELEASED,
            ended_at=now,
        )
    return bool(released)


def review_decide(
    *,
    listing_id: int,
    moderator,
    action: str,
    expected_status: str,
    expected_content_hash: str,
    reason_code: str = "",
    note: str = "",
    now: datetime | None = None,
) -> ListingDecision:
    """Approve, reject (with a reason) or escalate a listing the moderator looked at.

    The expected status and content hash are what the moderator saw: if the listing
    changed, was decided by someone else, or another moderator holds it now, the
    decision is refused with StaleDecision and nothing is written.
    """
    now = now or timezone.now()
    to_status = DECISIONS.get(action)
    if to_status is None:
        raise ValueError(f"Unknown decision {action!r}.")
    note = note.strip()
    if action == "reject":
        reasons = reject_reasons()
        if reason_code not in reasons:
            raise ValueError(
                f"Pick a reason to reject: {', '.join(reasons)} (not {reason_code!r})."
            )
        if reason_code == "other" and not note:
            raise ValueError("Rejecting for another reason needs a note.")
    else:
        reason_code = "approved" if action == "approve" else "escalated"
    with transaction.atomic():
        listing = _locked(listing_id)
        if listing is None:
            raise StaleDecision("The listing no longer exists.")
        if listing.deleted_at is not None:
            raise StaleDecision("Not applied: the seller deleted this listing.")
        if listing.status != expected_status:
            who = listing.decisions.exclude(actor=None).last()
            by = (
                f" by {who.actor_label}"
                if who and who.to_status == listing.status
                else ""
            )
            raise StaleDecision(
                f"Not applied: the listing was {expected_status} when you opened it "
                f"and is {listing.get_status_display().lower()}{by} now."
            )
        if listing.content_hash != expected_content_hash:
            raise StaleDecision(
                "Not applied: the seller changed the listing since you opened it."
            )
        if (
            listing.claimed_by_id not in (None, moderator.pk)
            and listing.claimed_until
            and listing.claimed_until >= now
        ):
            raise StaleDecision(
                f"Not applied: {listing.claimed_by.get_username()} is reviewing "
                "this listing now."
            )
        _check_may_decide(listing, moderator, action)
        ReviewClaim.objects.filter(
            listing=listing, moderator=moderator, outcome=ReviewClaim.Outcome.OPEN
        ).update(outcome=ReviewClaim.Outcome.DECIDED, ended_at=now)
        return listing_transition(
            listing=listing,
            to_status=to_status,
            actor=moderator,
            reason_code=reason_code,
            reason=note,
            expected_status=expected_status,
        )


def _check_may_decide(listing: Listing, moderator, action: str) -> None:
    if not moderator.has_perm("listings.moderate_listing"):
        raise DecisionNotAllowed("Only moderators decide listings.")
    if listing.seller_id == moderator.pk:
        raise DecisionNotAllowed("You cannot decide your own listing.")
    if listing.status == Status.ESCALATED:
        if action == "escalate":
            raise DecisionNotAllowed("The listing is already escalated.")
        if not moderator.has_perm("listings.decide_escalated"):
            raise DecisionNotAllowed("Only a senior moderator decides escalations.")
    if listing.status == Status.APPEALED:
        if ListingDecision.objects.filter(
            listing=listing, to_status=Status.REJECTED, actor=moderator
        ).exists():
            raise DecisionNotAllowed(
                "You rejected this listing before: its appeal goes to someone else."
            )


def review_decide_bulk(
    *,
    listing_ids: list[int],
    moderator,
    action: str,
    reason_code: str = "",
    note: str = "",
) -> tuple[list[ListingDecision], dict[int, str]]:
    """Decide several listings as they are now (an admin action): each one goes
    through review_decide, so claims held by others and forbidden changes are
    refused per listing. Returns the decisions and the refusals by listing id."""
    decided, refused = [], {}
    current = Listing.objects.filter(pk__in=listing_ids).values_list(
        "pk", "status", "content_hash"
    )
    for listing_id, status, content_hash in current:
        try:
            decided.append(
                review_decide(
                    listing_id=listing_id,
                    moderator=moderator,
                    action=action,
                    expected_status=status,
                    expected_content_hash=content_hash,
                    reason_code=reason_code,
                    note=note,
                )
            )
        except (TransitionNotAllowed, DecisionNotAllowed) as exc:
            refused[listing_id] = str(exc)
    return decided, refused


def listing_appeal(*, listing_id: int, seller, message: str) -> ListingAppeal:
    """The seller contests the last rejection, once; the listing re-enters the
    queue for a moderator other than the one who rejected it. A rejection of an
    appeal is final (until the seller changes the listing, which rescores it)."""
    message = message.strip()
    if not message:
        raise AppealNotAllowed("Say why the rejection is wrong.")
    with transaction.atomic():
        listing = _locked(listing_id)
        if listing is None or listing.seller_id != seller.pk:
            raise Listing.DoesNotExist(f"Listing {listing_id} does not exist.")
        if listing.status != Status.REJECTED:
            raise AppealNotAllowed("Only a rejected listing can be appealed.")
        rejection = listing.decisions.filter(to_status=Status.REJECTED).last()
        if ListingAppeal.objects.filter(rejection=rejection).exists():
            raise AppealNotAllowed("This rejection has already been appealed.")
        if rejection.from_status == Status.APPEALED:
            raise AppealNotAllowed("The appeal has been decided; that is final.")
        appeal = ListingAppeal.objects.create(
            listing=listing, rejection=rejection, seller=seller, message=message
        )
        listing_transition(
            listing=listing,
            to_status=Status.APPEALED,
            actor=seller,
            reason_code="appeal",
            reason=message,
            expected_status=Status.REJECTED,
        )
    return appeal


RESCORE_BATCH_TASK = "listings.tasks.rescore_batch"
RESCORE_BATCH_SIZE = 100


def listings_queue_rescore(
    *, listing_ids: list[int], batch_size: int = RESCORE_BATCH_SIZE
) -> int:
    """Queue these listings for a rescore with the active model, in batches, after
    commit (an admin action); returns how many batches."""
    version_id = model_version_active().version.pk
    transaction.on_commit(
        partial(
            _queue_batches,
            RESCORE_BATCH_TASK,
            version_id,
            listing_ids,
            batch_size,
            f"rescore-{version_id}-selected-{listing_ids[0] if listing_ids else 0}",
        ),
        robust=True,
    )
    return -(-len(listing_ids) // batch_size)


def _queue_batches(
    task: str, version_id: int, ids: list[int], batch_size: int, name: str
) -> int:
    """Queue ``task(version_id, batch)`` for each batch of ids; how many batches."""
    from django_q.tasks import async_task

    batches = 0
    for start in range(0, len(ids), batch_size):
        async_task(
            task,
            version_id,
            ids[start : start + batch_size],
            task_name=f"{name}-{start // batch_size}",
        )
        batches += 1
    return batches


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
    report.batches = _queue_batches(
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
    report = RescoreReport(model_version_id)
    active = model_version_active()
    if active.version.pk != model_version_id:
        report.skipped = f"{active.version} is active now"
        return report
    for listing_id in listing_ids:
        outcome = listing_rescore(listing_id=listing_id, active=active).outcome
        report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
    return report


def _field_scores(score: ListingScore) -> dict[str, float | None]:
    """A listing's worst similarity per field, as routing saw it."""
    result: dict[str, float | None] = {}
    for name in FIELDS:
        values = [i[name] for i in score.images if i.get(name) is not None]
        result[name] = min(values) if values else None
    return result


def _judged(rows, thresholds: dict, fields: list[str]) -> dict:
    """How cuts sort decided listings, each by its own category's cuts: held when
    any of the fields is below its hold, passed when all are at or above pass."""
    held = passed = held_mismatches = passed_matches = mismatches = n = 0
    for row, scores in rows:
        cuts = thresholds["categories"].get(row.category, thresholds)
        present = [f for f in fields if scores[f] is not None]
        if not present:
            continue
        n += 1
        mismatches += row.label == 0
        if any(scores[f] < cuts[f]["hold"] for f in present):
            held += 1
            held_mismatches += row.label == 0
        elif all(scores[f] >= cuts[f]["pass"] for f in present):
            passed += 1
            passed_matches += row.label == 1
    return {
        "n": n,
        "mismatches": mismatches,
        "held": held,
        "review": n - held - passed,
        "passed": passed,
        "hold_precision": held_mismatches / held if held else None,
        "hold_recall": held_mismatches / mismatches if mismatches else None,
        "pass_precision": passed_matches / passed if passed else None,
        "mismatches_passed": passed - passed_matches,
    }


def thresholds_propose_from_decisions(
    *,
    target: float = 0.9,
    pass_target: float = 0.98,
    min_decisions: int = 30,
    holdout: float = 0.3,
) -> ThresholdVersion:
    """Propose thresholds for the active model from moderators' decisions.

    The oldest decisions choose the cuts, globally and per category where a
    category has at least `min_decisions` with both labels; the newest `holdout`
    share is kept aside to show how the cuts do on decisions they never saw.
    Nothing routes differently until a staff user applies the proposal.
    """
    from clipmatch.inference import calibration
    from listings.selectors import scores_for_calibration

    active = model_version_active()
    examples = scores_for_calibration(model_version_id=active.version.pk)
    if len(examples) < 10:
        raise CalibrationError(
            f"Only {len(examples)} decided listings were scored by {active.version}; "
            "at least 10 are needed."
        )
    n_fit = len(examples) - max(1, round(len(examples) * holdout))
    fit, held_out = examples[:n_fit], examples[n_fit:]
    if {r.label for r, _ in fit} != {0, 1}:
        raise CalibrationError(
            "The decisions to calibrate on need both approvals and mismatch rejections."
        )

    def propose(rows) -> dict:
        cuts = {}
        for name in FIELDS:
            pairs = [(s[name], r.label) for r, s in rows if s[name] is not None]
            if not pairs:
                cuts[name] = {"pass": 1.0, "hold": -1.0, "fit": {"n": 0}, "notes": []}
                continue
            cuts[name] = calibration.propose(
                [p[0] for p in pairs],
                [p[1] for p in pairs],
                target=target,
                pass_target=pass_target,
            )
        return cuts

    with_fields = [(r, _field_scores(s)) for r, s in fit]
    global_cuts = propose(with_fields)
    categories = {}
    for name in sorted({r.category for r, _ in with_fields}):
        rows = [(r, s) for r, s in with_fields if r.category == name]
        if len(rows) >= min_decisions and {r.label for r, _ in rows} == {0, 1}:
            categories[name] = propose(rows)

    def plain(cuts: dict) -> dict:
        return {f: {"pass": c["pass"], "hold": c["hold"]} for f, c in cuts.items()}

    thresholds = {
        **plain(global_cuts),
        "category_top_k": active.thresholds.category_top_k,
        "categories": {name: plain(c) for name, c in categories.items()},
    }
    held_rows = [(r, _field_scores(s)) for r, s in held_out]
    held_figures = {name: _judged(held_rows, thresholds, [name]) for name in FIELDS}
    held_figures["listing"] = _judged(held_rows, thresholds, list(FIELDS))
    figures = {
        "target_precision": target,
        "pass_precision": pass_target,
        "min_decisions": min_decisions,
        "decisions": len(examples),
        "fit": {"n": len(fit), "until": fit[-1][0].decided_at.isoformat()},
        "held_out": {
            "n": len(held_out),
            "since": held_out[0][0].decided_at.isoformat(),
            "hold": held_figures,
        },
        "global": global_cuts,
        "categories": categories,
        "previous": active.thresholds.as_dict(),
    }
    return threshold_version_propose(
        version=active.version, thresholds=thresholds, figures=figures
    )


SHADOW_SCORE_TASK = "listings.tasks.score_shadow"
SHADOW_BATCH_TASK = "listings.tasks.shadow_batch"


def _queue_shadow(listing_id: int) -> None:
    from django_q.tasks import async_task

    async_task(SHADOW_SCORE_TASK, listing_id, task_name=f"shadow-{listing_id}")


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
        assessment = _assess(listing, shadow)
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
    report.batches = _queue_batches(
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
    report = RescoreReport(model_version_id)
    shadow = model_version_shadowing()
    if shadow is None or shadow.version.pk != model_version_id:
        report.skipped = "not the shadow model any more"
        return report
    for listing_id in listing_ids:
        outcome = listing_score_shadow(listing_id=listing_id, shadow=shadow).outcome
        report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
    return report


class ListingNotEditable(Exception):
    """A change to a listing that its state or its owner does not allow."""


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
        current = _locked(listing.pk)
        if current is None or current.deleted_at is not None:
            raise Listing.DoesNotExist(f"Listing {listing.pk} no longer exists.")
        if current.seller_id != getattr(actor, "pk", None):
            raise ListingNotEditable("Only the listing's seller can change it.")
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
                transaction.on_commit(
                    partial(old.image.storage.delete, old.image.name), robust=True
                )
            for position, (name, data) in enumerate(images):
                ListingImage.objects.create(
                    listing=current,
                    image=ContentFile(data, name=name),
                    position=position,
                )
            current.save(update_fields=["updated_at"])
    current.refresh_from_db()
    return current


def listing_soft_delete(*, listing: Listing, actor) -> ListingDecision:
    """Hide a listing for good; it stays in the database with its audit trail.

    The audit row records who deleted it, from which status.
    """
    with transaction.atomic():
        current = _locked(listing.pk)
        if current is None or current.deleted_at is not None:
            raise Listing.DoesNotExist(f"Listing {listing.pk} no longer exists.")
        if current.seller_id != getattr(actor, "pk", None):
            raise ListingNotEditable("Only the listing's seller can delete it.")
        current.deleted_at = timezone.now()
        _leave_queue(current, current.deleted_at)
        current.save(update_fields=["deleted_at", "updated_at", *_QUEUE_FIELDS])
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
    decode_image(image)  # a bad image is the caller's error, before any model work
    active = model_version_active()
    assessment = content_assess(
        title=title,
        description=description,
        category_name=category.name,
        images=[image],
        active=active,
    )
    return PrecheckResult(assessment=assessment, active=active)


SELLER_PERMISSIONS = ["add_listing", "change_listing", "delete_listing", "view_listing"]


def seller_ensure(*, username: str, password: str | None = None):
    """Create (or find) a user in the Sellers group; with a password, set it."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission

    from listings.roles import SELLERS

    group, _ = Group.objects.get_or_create(name=SELLERS)
    group.permissions.set(
        Permission.objects.filter(
            content_type__app_label="listings", codename__in=SELLER_PERMISSIONS
        )
    )
    user, _ = get_user_model().objects.get_or_create(username=username)
    if password:
        user.set_password(password)
        user.save(update_fields=["password"])
    user.groups.add(group)
    return user


def api_token_issue(*, user, reset: bool = False) -> str:
    """The user's API token, created when missing; `reset` replaces it."""
    from rest_framework.authtoken.models import Token

    with transaction.atomic():
        if reset:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
    return token.key
