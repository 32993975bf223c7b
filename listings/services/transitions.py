"""The status machine: which moves are allowed, and the one service that makes
them, each with its audit row in the same transaction."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from listings.models import Listing, ListingDecision, ListingScore, ReviewClaim
from listings.services.bulk import rows_update
from listings.services.exceptions import TransitionNotAllowed
from listings.services.priority import review_priority
from listings.webhooks.services import (
    webhooks_record_decision,
    webhooks_record_decisions,
)

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
# The queue fields a move into or out of the queue writes.
QUEUE_FIELDS = [
    "queued_for_review_at",
    "queue_reason",
    "review_priority",
    "claimed_by",
    "claimed_until",
]


def listing_transition(
    *,
    listing: Listing,
    to_status: str,
    actor=None,
    reason_code: str,
    reason: str = "",
    seller_message: str | None = None,
    score: ListingScore | None = None,
    expected_status: str | None = None,
    undoes: ListingDecision | None = None,
) -> ListingDecision:
    """Move a listing to a new status and write its audit row, in one transaction.

    The status in the database decides, not the one on the instance passed in: a
    decision made on a page loaded before the listing changed is refused. What the
    seller is told is the reason unless said otherwise (a moderator's note is
    internal: review_decide says what the seller reads). With `undoes`, the move
    is that decision taken back, allowed only while it is the listing's last.
    """
    with transaction.atomic():
        current = listing_locked(listing.pk)
        if current is None:
            raise Listing.DoesNotExist(f"Listing {listing.pk} no longer exists.")
        from_status = current.status
        if expected_status is not None and from_status != expected_status:
            raise TransitionNotAllowed(
                f"The listing is {from_status} now, no longer {expected_status}.",
                code="already_decided",
            )
        queue_reason = reason_code
        if undoes is not None:
            queue_reason = _check_undo(current, undoes, to_status)
        elif to_status not in TRANSITIONS.get(from_status, set()):
            raise TransitionNotAllowed(
                f"A listing cannot go from {from_status} to {to_status}."
            )
        if to_status in HUMAN_STATES and actor is None:
            raise TransitionNotAllowed(
                f"Only a person can move a listing to {to_status}."
            )
        decision, lost = _move(
            current,
            listing,
            to_status,
            actor=actor,
            reason_code=reason_code,
            queue_reason=queue_reason,
            reason=reason,
            seller_message=seller_message,
            score=score,
            undoes=undoes,
            now=timezone.now(),
        )
        if lost:
            _claims_lost([listing.pk], decision.created_at)
        listing.save(update_fields=_move_fields(score))
        decision.save()
        # Recorded with the decision, sent after commit.
        webhooks_record_decision(decision=decision)
        return decision


def listings_transition_system(
    *, moves: list[tuple[Listing, str, ListingScore, str]], now
) -> list[ListingDecision]:
    """Many system moves (a rescore) at once: each (locked listing, to status,
    score, reason code) checked against the state machine as `listing_transition`
    checks it, the listings written in one statement and their audit rows with one
    bulk insert. The caller holds the rows' locks, in its transaction, and passes each
    listing as read under them; reasons are the score's."""
    decisions, changed, lost = [], [], []
    for listing, to_status, score, reason_code in moves:
        if to_status not in TRANSITIONS.get(listing.status, set()) - HUMAN_STATES:
            raise TransitionNotAllowed(
                f"A listing cannot go from {listing.status} to {to_status}."
            )
        current = Listing(
            pk=listing.pk,
            status=listing.status,
            price=listing.price,
            score_id=listing.score_id,
            queued_for_review_at=listing.queued_for_review_at,
            claimed_by_id=listing.claimed_by_id,
            claimed_until=listing.claimed_until,
        )
        decision, claims_lost = _move(
            current,
            listing,
            to_status,
            actor=None,
            reason_code=reason_code,
            queue_reason=reason_code,
            reason=" ".join(score.reasons),
            seller_message=None,
            score=score,
            undoes=None,
            now=now,
        )
        listing.updated_at = now
        decisions.append(decision)
        changed.append(listing)
        if claims_lost:
            lost.append(listing.pk)
    rows_update(changed, _move_fields(True))
    _claims_lost(lost, now)
    ListingDecision.objects.bulk_create(decisions, batch_size=500)
    webhooks_record_decisions(decisions=decisions)
    return decisions


def _move_fields(score) -> list[str]:
    return ["status", "updated_at", *QUEUE_FIELDS] + (["score"] if score else [])


def _move(
    current: Listing,
    listing: Listing,
    to_status: str,
    *,
    actor,
    reason_code: str,
    queue_reason: str,
    reason: str,
    seller_message: str | None,
    score: ListingScore | None,
    undoes: ListingDecision | None,
    now,
) -> tuple[ListingDecision, bool]:
    """Set the status and the queue fields of `listing` for a move from the state
    `current` has in the database; the unsaved audit row, and whether whoever held
    the listing loses the claim."""
    from_status = current.status
    listing.status = to_status
    if score is not None:
        listing.score = score
    # The score the listing stands on, for the audit row: the one passed in when
    # the system routes, the current one when a person decides.
    basis = score or current.score
    queued_at = current.queued_for_review_at if from_status in QUEUE_STATES else None
    lost = True
    if to_status in QUEUE_STATES:
        # The model re-routing between review and held keeps the stay's entry
        # time and whoever holds it; an escalation or an appeal starts anew.
        rerouted = {from_status, to_status} <= {Status.REVIEW, Status.HELD}
        entered = queued_at if rerouted and queued_at else now
        if undoes is not None and undoes.queued_at:
            # Taken back: the listing waits as if it had never left.
            entered = undoes.queued_at
        listing.queued_for_review_at = entered
        listing.queue_reason = queue_reason
        listing.review_priority = review_priority(
            score=basis, price=current.price, entered=entered, reason=queue_reason
        )
        listing.claimed_by_id = current.claimed_by_id if rerouted else None
        listing.claimed_until = current.claimed_until if rerouted else None
        lost = not rerouted
    else:
        _leave_queue_fields(listing)
    decision = ListingDecision(
        listing=listing,
        actor=actor,
        from_status=from_status,
        to_status=to_status,
        reason_code=reason_code,
        reason=reason,
        seller_message=reason if seller_message is None else seller_message,
        undoes=undoes,
        model_version=str(basis.model_version) if basis else "",
        score=basis.similarity if basis else None,
        thresholds=basis.thresholds if basis else {},
        model_verdict=basis.verdict if basis else "",
        queued_at=queued_at,
        created_at=now,
    )
    return decision, lost


def _check_undo(current: Listing, undoes: ListingDecision, to_status: str) -> str:
    """An undo goes back exactly one step, and only from where that step led.
    Returns why the listing was queued before that step."""
    last_two = list(current.decisions.order_by("-created_at", "-id")[:2])
    if (
        not last_two
        or last_two[0].pk != undoes.pk
        or current.status != undoes.to_status
    ):
        raise TransitionNotAllowed(
            "Too late to undo: the listing has moved on since that decision.",
            code="listing_moved_on",
        )
    if to_status != undoes.from_status:
        raise TransitionNotAllowed(
            f"Undoing goes back to {undoes.from_status}, not to {to_status}."
        )
    return last_two[1].reason_code if len(last_two) > 1 else undoes.reason_code


def leave_queue(listing: Listing, now: datetime) -> None:
    """Clear the queue fields (the caller saves QUEUE_FIELDS); whoever held the
    listing loses the claim."""
    _leave_queue_fields(listing)
    _claims_lost([listing.pk], now)


def _leave_queue_fields(listing: Listing) -> None:
    listing.queued_for_review_at = None
    listing.queue_reason = ""
    listing.review_priority = 0.0
    listing.claimed_by = None
    listing.claimed_until = None


def _claims_lost(listing_ids: list[int], now: datetime) -> None:
    """Whoever still held these listings lost them: they left their part of the
    queue."""
    if listing_ids:
        ReviewClaim.objects.filter(
            listing_id__in=listing_ids, outcome=ReviewClaim.Outcome.OPEN
        ).update(outcome=ReviewClaim.Outcome.LOST, ended_at=now)


def listing_locked(listing_id: int) -> Listing | None:
    """The listing, locked for the rest of the transaction, or None if it is gone."""
    return (
        # of=("self",): on PostgreSQL, lock the listing, not its category's row.
        Listing.objects.select_for_update(of=("self",))
        .select_related("category")
        .filter(pk=listing_id)
        .first()
    )
