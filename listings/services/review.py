"""The review queue: claims and their leases, moderators' decisions, appeals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clipmatch import conf
from listings.models import Listing, ListingAppeal, ListingDecision, ReviewClaim
from listings.services.exceptions import (
    AppealNotAllowed,
    ClaimLost,
    DecisionNotAllowed,
    StaleDecision,
    TransitionNotAllowed,
)
from listings.services.transitions import (
    QUEUE_STATES,
    listing_locked,
    listing_transition,
)

Status = Listing.Status


@dataclass(frozen=True)
class ReviewFilters:
    """What a moderator narrowed the queue to; empty values mean everything."""

    category: int | None = None
    band: str = ""
    reason: str = ""
    model_version: int | None = None
    seller: int | None = None
    text: str = ""


DECISIONS = {
    "approve": Status.APPROVED,
    "reject": Status.REJECTED,
    "escalate": Status.ESCALATED,
}


def reject_reasons() -> dict[str, str]:
    """The configured reasons a moderator rejects for, code -> label."""
    return {code: label for code, label in conf.get("REJECT_REASONS")}


# What the seller reads when the moderator writes them nothing of their own.
SELLER_MESSAGES = {
    "approve": "A moderator approved the listing.",
    "escalate": "A senior moderator will take a second look at the listing.",
    "undo": "A moderator took the last decision back; the listing is in review again.",
}


def seller_message_default(*, action: str, reason_code: str = "") -> str:
    """The seller's message for a decision: a rejection's reason in its own words."""
    if action == "reject":
        label = reject_reasons().get(reason_code, "")
        # "Other (write a note)": the part in brackets is for the moderator.
        label = label.split(" (")[0]
        return f"Rejected: {label.lower()}." if label else "Rejected."
    return SELLER_MESSAGES[action]


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
            message, code = _claim_lost(listing_id, moderator, now)
            raise ClaimLost(message, code=code)
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


def _claim_lost(listing_id: int, moderator, now: datetime) -> tuple[str, str]:
    """Why the claim was refused: a sentence and its code."""
    listing = Listing.objects.select_related("claimed_by").filter(pk=listing_id).first()
    if listing is None:
        return "The listing no longer exists.", "listing_gone"
    if listing.deleted_at is not None:
        return "The seller deleted this listing.", "listing_gone"
    if listing.seller_id == moderator.pk:
        return "This is your own listing: someone else reviews it.", "own_listing"
    if listing.status not in QUEUE_STATES:
        return (
            f"The listing is no longer in the queue (it is {listing.status} now).",
            "already_decided",
        )
    if listing.claimed_by and listing.claimed_until and listing.claimed_until >= now:
        return (
            f"{listing.claimed_by.get_username()} is reviewing this listing.",
            "claimed_by_another",
        )
    return "This listing is not in your queue.", "not_in_queue"


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
    message: str = "",
    now: datetime | None = None,
) -> ListingDecision:
    """Approve, reject (with a reason) or escalate a listing the moderator looked at.

    The expected status and content hash are what the moderator saw: if the listing
    changed, was decided by someone else, or another moderator holds it now, the
    decision is refused with StaleDecision and nothing is written. The note is
    internal (the audit log, other moderators); the seller reads only the message,
    by default the reason in its own words.
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
    if action == "escalate" and not note:
        raise ValueError("Escalating needs a note: say what the senior should look at.")
    message = message.strip() or seller_message_default(
        action=action, reason_code=reason_code
    )
    with transaction.atomic():
        listing = listing_locked(listing_id)
        if listing is None:
            raise StaleDecision("The listing no longer exists.", code="listing_gone")
        if listing.deleted_at is not None:
            raise StaleDecision(
                "Not applied: the seller deleted this listing.", code="listing_gone"
            )
        if listing.status != expected_status:
            who = listing.decisions.exclude(actor=None).last()
            by = (
                f" by {who.actor_label}"
                if who and who.to_status == listing.status
                else ""
            )
            raise StaleDecision(
                f"Not applied: the listing was {expected_status} when you opened it "
                f"and is {listing.get_status_display().lower()}{by} now.",
                code="already_decided",
            )
        if listing.content_hash != expected_content_hash:
            raise StaleDecision(
                "Not applied: the seller changed the listing since you opened it.",
                code="stale_content",
            )
        if (
            listing.claimed_by_id not in (None, moderator.pk)
            and listing.claimed_until
            and listing.claimed_until >= now
        ):
            raise StaleDecision(
                f"Not applied: {listing.claimed_by.get_username()} is reviewing "
                "this listing now.",
                code="claimed_by_another",
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
            seller_message=message,
            expected_status=expected_status,
        )


def review_undo(
    *,
    decision_id: int,
    moderator,
    listing_id: int | None = None,
    now: datetime | None = None,
) -> ListingDecision:
    """Take back the moderator's own decision within the undo window, as a decision
    of its own; refused once the listing has moved on. The listing comes back to
    the queue where it was, claimed by the moderator again. With `listing_id`, the
    decision must be of that listing (the API names both). The decision's webhook
    deliveries that are still waiting for the window are cancelled."""
    now = now or timezone.now()
    window = timedelta(seconds=conf.get("REVIEW_UNDO_SECONDS"))
    with transaction.atomic():
        decision = (
            ListingDecision.objects.select_related("listing")
            .filter(pk=decision_id, actor=moderator)
            .first()
        )
        # Only a decision review_decide made: not an appeal, not an undo.
        if (
            decision is None
            or not decision.undoable
            or listing_id not in (None, decision.listing_id)
        ):
            raise TransitionNotAllowed(
                "There is no decision of yours to undo.", code="nothing_to_undo"
            )
        if now - decision.created_at > window:
            raise TransitionNotAllowed(
                "Too late to undo: the window closed "
                f"{conf.get('REVIEW_UNDO_SECONDS')} seconds after the decision.",
                code="undo_window_closed",
            )
        listing = listing_locked(decision.listing_id)
        if listing is None or listing.deleted_at is not None:
            raise TransitionNotAllowed(
                "Too late to undo: the listing is gone.", code="listing_gone"
            )
        undo = listing_transition(
            listing=listing,
            to_status=decision.from_status,
            actor=moderator,
            reason_code="undo",
            reason=f"Took back {decision.reason_code} (decision {decision.pk}).",
            seller_message=SELLER_MESSAGES["undo"],
            undoes=decision,
        )
        try:
            review_claim(listing_id=listing.pk, moderator=moderator, now=now)
        except ClaimLost:
            pass  # back in the queue, for someone else (an escalation, say)
    return undo


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
        raise AppealNotAllowed("Say why the rejection is wrong.", code="appeal_empty")
    with transaction.atomic():
        listing = listing_locked(listing_id)
        if listing is None or listing.seller_id != seller.pk:
            raise Listing.DoesNotExist(f"Listing {listing_id} does not exist.")
        if listing.status != Status.REJECTED:
            raise AppealNotAllowed(
                "Only a rejected listing can be appealed.", code="not_rejected"
            )
        rejection = listing.decisions.filter(to_status=Status.REJECTED).last()
        if ListingAppeal.objects.filter(rejection=rejection).exists():
            raise AppealNotAllowed(
                "This rejection has already been appealed.", code="already_appealed"
            )
        if rejection.from_status == Status.APPEALED:
            raise AppealNotAllowed(
                "The appeal has been decided; that is final.", code="appeal_final"
            )
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
