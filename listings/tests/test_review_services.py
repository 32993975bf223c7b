"""The review queue's services: order, claims and leases, decisions, appeals."""

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from listings.models import Listing, ListingAppeal, ListingDecision, ReviewClaim
from listings.services.exceptions import (
    AppealNotAllowed,
    ClaimLost,
    DecisionNotAllowed,
    StaleDecision,
    TransitionNotAllowed,
)
from listings.services.priority import mismatch_probability, review_priority
from listings.services.review import (
    ReviewFilters,
    listing_appeal,
    review_claim,
    review_claim_next,
    review_decide,
    review_decide_bulk,
    review_release,
    review_undo,
)
from listings.services.scoring import listing_request_scoring
from listings.services.transitions import listing_transition
from listings.tests.factories import CategoryFactory, moderator, queue_item

pytestmark = pytest.mark.django_db
Status = Listing.Status


def decide(listing, user, action="approve", **kwargs):
    listing.refresh_from_db()
    return review_decide(
        listing_id=listing.pk,
        moderator=user,
        action=action,
        expected_status=listing.status,
        expected_content_hash=listing.content_hash,
        **kwargs,
    )


def drain(user, **kwargs):
    order = []
    while (item := review_claim_next(moderator=user, **kwargs)) is not None:
        order.append(item.title)
        decide(item, user)
    return order


def test_the_estimate_is_088_at_the_hold_cut_and_012_at_the_pass_cut():
    at_hold = queue_item(title_similarity=0.2).score
    at_pass = queue_item(title_similarity=0.3).score
    assert mismatch_probability(score=at_hold) == pytest.approx(0.8808, abs=1e-4)
    assert mismatch_probability(score=at_pass) == pytest.approx(0.1192, abs=1e-4)
    assert mismatch_probability(score=None) == 0.5


def test_the_priority_is_log_harm_less_the_entry_time_in_aging_periods(settings):
    # No score: even odds. Exposure log10(10 + price): 1 when free, 3 at 990.
    day_two = datetime(1970, 1, 3, tzinfo=UTC)  # two 24-hour aging periods in
    day_one = day_two - timedelta(days=1)

    free_now = review_priority(score=None, price=Decimal("0"), entered=day_two)
    free_earlier = review_priority(score=None, price=Decimal("0"), entered=day_one)
    dear_now = review_priority(score=None, price=Decimal("990"), entered=day_two)
    settings.CLIPMATCH = {**settings.CLIPMATCH, "REVIEW_AGING_HOURS": 12.0}
    free_now_fast_aging = review_priority(
        score=None, price=Decimal("0"), entered=day_two
    )

    assert free_now == pytest.approx(math.log(0.5) - 2.0, abs=1e-12)
    assert free_earlier == pytest.approx(math.log(0.5) - 1.0, abs=1e-12)
    assert dear_now == pytest.approx(math.log(0.5 * 3) - 2.0, abs=1e-12)
    assert free_now_fast_aging == pytest.approx(math.log(0.5) - 4.0, abs=1e-12)


def test_held_listings_come_first_then_the_most_likely_and_most_exposed():
    queue_item(title="weak match, cheap", title_similarity=0.28, price="5")
    queue_item(title="held", status="held", title_similarity=0.1, price="5")
    queue_item(title="poor match, cheap", title_similarity=0.21, price="5")
    queue_item(title="poor match, dear", title_similarity=0.21, price="900")
    assert drain(moderator()) == [
        "held",
        "poor match, dear",
        "poor match, cheap",
        "weak match, cheap",
    ]


def test_a_day_of_waiting_outweighs_a_smaller_estimate():
    older = queue_item(title="older, less likely", title_similarity=0.25)
    queue_item(title="newer, more likely", title_similarity=0.24)
    # One aging period (24 h) earlier multiplies the older item's harm by e.
    Listing.objects.filter(pk=older.pk).update(
        review_priority=older.review_priority + 1.0
    )
    assert drain(moderator())[0] == "older, less likely"


def test_two_moderators_get_different_items_and_a_reload_gets_your_own_back():
    queue_item(title="one")
    queue_item(title="two")
    alice, bob = moderator("alice"), moderator("bob")
    first = review_claim_next(moderator=alice)
    second = review_claim_next(moderator=bob)
    assert first.pk != second.pk
    assert review_claim_next(moderator=alice).pk == first.pk
    assert review_claim_next(moderator=moderator("carol")) is None
    assert first.claimed_by == alice
    assert ReviewClaim.objects.filter(outcome="open").count() == 2


def test_an_expired_lease_returns_the_item_and_the_late_decision_is_refused():
    item = queue_item(title="abandoned")
    alice, bob = moderator("alice"), moderator("bob")
    now = timezone.now()
    review_claim_next(moderator=alice, now=now)
    assert review_claim_next(moderator=bob, now=now + timedelta(seconds=299)) is None
    later = now + timedelta(seconds=301)
    taken = review_claim_next(moderator=bob, now=later)
    assert taken.pk == item.pk
    with pytest.raises(StaleDecision, match="bob is reviewing this listing now"):
        decide(item, alice, now=later)
    outcomes = dict(ReviewClaim.objects.values_list("moderator__username", "outcome"))
    assert outcomes == {"alice": "expired", "bob": "open"}
    decide(item, bob, now=later)
    assert Listing.objects.get(pk=item.pk).status == Status.APPROVED


def test_renewing_keeps_the_claim_past_the_first_lease():
    item = queue_item()
    alice, bob = moderator("alice"), moderator("bob")
    now = timezone.now()
    review_claim(listing_id=item.pk, moderator=alice, now=now)
    review_claim(listing_id=item.pk, moderator=alice, now=now + timedelta(seconds=200))
    with pytest.raises(ClaimLost, match="alice is reviewing this listing"):
        review_claim(
            listing_id=item.pk, moderator=bob, now=now + timedelta(seconds=400)
        )


def test_a_decision_on_content_the_seller_changed_is_refused():
    item = queue_item(title="old title")
    alice = moderator("alice")
    seen = review_claim_next(moderator=alice)
    Listing.objects.filter(pk=item.pk).update(title="new title")
    listing_request_scoring(listing_id=item.pk)  # what the seller's save does
    with pytest.raises(StaleDecision, match="no longer review|is awaiting check"):
        review_decide(
            listing_id=item.pk,
            moderator=alice,
            action="approve",
            expected_status=seen.status,
            expected_content_hash=seen.content_hash,
        )
    listing = Listing.objects.get(pk=item.pk)
    assert (listing.status, listing.claimed_by) == (Status.PENDING, None)
    assert ReviewClaim.objects.get().outcome == "lost"
    assert not ListingDecision.objects.exclude(actor=None).exists()


def test_a_second_decision_on_the_same_view_is_refused_and_writes_nothing():
    item = queue_item()
    alice, bob = moderator("alice"), moderator("bob")
    seen = {"expected_status": item.status, "expected_content_hash": item.content_hash}
    review_decide(listing_id=item.pk, moderator=alice, action="approve", **seen)
    with pytest.raises(StaleDecision, match="is approved by alice now"):
        review_decide(
            listing_id=item.pk,
            moderator=bob,
            action="reject",
            reason_code="wrong_image",
            **seen,
        )
    assert list(
        ListingDecision.objects.exclude(actor=None).values_list(
            "actor__username", "to_status"
        )
    ) == [("alice", "approved")]


def test_rejecting_needs_a_configured_reason_and_other_needs_a_note():
    item = queue_item()
    alice = moderator("alice")
    with pytest.raises(ValueError, match="Pick a reason to reject"):
        decide(item, alice, "reject", reason_code="ugly")
    with pytest.raises(ValueError, match="needs a note"):
        decide(item, alice, "reject", reason_code="other", note="  ")
    decision = decide(item, alice, "reject", reason_code="other", note="Stock photo.")
    assert (decision.reason_code, decision.reason) == ("other", "Stock photo.")
    assert decision.queued_at == item.queued_for_review_at
    assert decision.model_verdict == ""


def test_the_audit_row_keeps_the_score_the_moderator_decided_on():
    item = queue_item(title_similarity=0.1, status="held")
    decision = decide(item, moderator(), "approve")
    assert (decision.from_status, decision.to_status) == ("held", "approved")
    assert (decision.score, decision.model_verdict) == (0.1, "hold")
    assert decision.thresholds["title"] == {"pass": 0.3, "hold": 0.2}
    assert decision.model_version.startswith("clip-test@")


def test_a_skipped_item_stays_away_from_that_moderator_only():
    item = queue_item(title="skipped")
    queue_item(title="other")
    alice, bob = moderator("alice"), moderator("bob")
    first = review_claim_next(moderator=alice)
    assert review_release(listing_id=first.pk, moderator=alice, skipped=True)
    assert review_claim_next(moderator=alice).pk != first.pk
    assert review_claim_next(moderator=bob).pk == first.pk == item.pk


def test_escalations_are_decided_by_senior_moderators_only():
    item = queue_item(title="unsure")
    alice, senior = moderator("alice"), moderator("sam", senior=True)
    review_claim_next(moderator=alice)
    decide(item, alice, "escalate", note="Looks like a replica?")
    escalated = Listing.objects.get(pk=item.pk)
    assert (escalated.status, escalated.claimed_by) == (Status.ESCALATED, None)
    assert ReviewClaim.objects.get().outcome == "decided"
    assert review_claim_next(moderator=alice) is None
    with pytest.raises(DecisionNotAllowed, match="senior"):
        decide(item, alice, "approve")
    assert review_claim_next(moderator=senior).pk == item.pk
    decide(item, senior, "reject", reason_code="prohibited")
    assert Listing.objects.get(pk=item.pk).status == Status.REJECTED


def test_an_appeal_goes_to_a_different_moderator_once():
    item = queue_item(title="appealed")
    alice, bob = moderator("alice"), moderator("bob")
    decide(item, alice, "reject", reason_code="wrong_image")
    with pytest.raises(Listing.DoesNotExist):
        listing_appeal(listing_id=item.pk, seller=bob, message="Not mine to appeal.")
    appeal = listing_appeal(
        listing_id=item.pk, seller=item.seller, message="That is my sneaker."
    )
    assert appeal.rejection.actor == alice
    assert Listing.objects.get(pk=item.pk).status == Status.APPEALED
    assert review_claim_next(moderator=alice) is None
    with pytest.raises(DecisionNotAllowed, match="goes to someone else"):
        decide(item, alice, "approve")
    assert review_claim_next(moderator=bob).pk == item.pk
    decide(item, bob, "reject", reason_code="wrong_image", note="Upheld.")
    with pytest.raises(AppealNotAllowed, match="decided; that is final"):
        listing_appeal(listing_id=item.pk, seller=item.seller, message="Again!")
    assert ListingAppeal.objects.count() == 1


def test_only_a_rejected_listing_can_be_appealed():
    item = queue_item()
    with pytest.raises(AppealNotAllowed, match="Only a rejected listing"):
        listing_appeal(listing_id=item.pk, seller=item.seller, message="Why?")


def test_bulk_decisions_skip_items_another_moderator_holds():
    free = queue_item(title="free")
    held = queue_item(title="held by bob")
    alice, bob = moderator("alice"), moderator("bob")
    review_claim(listing_id=held.pk, moderator=bob)
    decided, refused = review_decide_bulk(
        listing_ids=[free.pk, held.pk],
        moderator=alice,
        action="reject",
        reason_code="wrong_category",
    )
    assert [d.listing_id for d in decided] == [free.pk]
    assert refused == {held.pk: "Not applied: bob is reviewing this listing now."}


def test_filters_narrow_the_queue_to_a_category_and_band():
    bags = CategoryFactory(name="handbag")
    queue_item(title="bag", category=bags, title_similarity=0.25)
    queue_item(title="held shoe", status="held", title_similarity=0.1)
    alice = moderator("alice")
    only_bags = ReviewFilters(category=bags.pk)
    assert review_claim_next(moderator=alice, filters=only_bags).title == "bag"
    held = ReviewFilters(band="hold")
    assert (
        review_claim_next(moderator=moderator("b"), filters=held).title == "held shoe"
    )


def test_a_non_moderator_cannot_decide():
    from listings.tests.factories import UserFactory

    item = queue_item()
    with pytest.raises(DecisionNotAllowed, match="Only moderators"):
        decide(item, UserFactory(username="staffer", is_staff=True))


def test_a_rescore_that_keeps_an_item_in_review_updates_its_place_in_line(
    tiny_clip_dir, use_model, queued
):
    from listings.services.rescoring import listing_rescore
    from listings.services.scoring import listing_score
    from listings.tests.conftest import REVIEW_ALL
    from listings.tests.factories import ListingImageFactory

    use_model(tiny_clip_dir, REVIEW_ALL)
    listing = ListingImageFactory().listing
    listing_score(listing_id=listing.pk)
    listing.refresh_from_db()
    assert listing.status == Status.REVIEW
    entered, before = listing.queued_for_review_at, listing.review_priority
    sims = [
        image[field]
        for image in listing.score.images
        for field in ("title", "description")
    ]
    # A narrower review band that still holds every similarity: the listing stays
    # in review, each similarity sits nearer the hold cut, the estimate rises.
    hold = min(sims) - 0.01
    narrower = {"pass": 1.0, "hold": hold}
    use_model(tiny_clip_dir, {"title": narrower, "description": narrower})
    listing_rescore(listing_id=listing.pk)
    listing.refresh_from_db()
    assert listing.status == Status.REVIEW
    assert listing.queued_for_review_at == entered
    assert listing.review_priority > before


def test_a_moderator_never_gets_or_decides_their_own_listing():
    alice = moderator("alice")
    own = queue_item(title="alice's own", seller=alice)
    assert review_claim_next(moderator=alice) is None
    with pytest.raises(ClaimLost, match="your own listing"):
        review_claim(listing_id=own.pk, moderator=alice)
    with pytest.raises(DecisionNotAllowed, match="your own listing"):
        decide(own, alice, "approve")
    assert review_claim_next(moderator=moderator("bob")).pk == own.pk


def test_a_deleted_listing_leaves_the_queue_and_its_claim(queued):
    from listings.services.lifecycle import listing_soft_delete

    item = queue_item(title="deleted")
    alice = moderator("alice")
    seen = review_claim_next(moderator=alice)
    listing_soft_delete(listing=item, actor=item.seller)

    assert review_claim_next(moderator=alice) is None
    with pytest.raises(StaleDecision, match="the seller deleted this listing"):
        review_decide(
            listing_id=item.pk,
            moderator=alice,
            action="reject",
            reason_code="wrong_image",
            expected_status=seen.status,
            expected_content_hash=seen.content_hash,
        )
    listing = Listing.objects.get(pk=item.pk)
    assert (listing.claimed_by, listing.queued_for_review_at) == (None, None)
    assert ReviewClaim.objects.get().outcome == "lost"


def test_an_edit_after_a_rejection_goes_back_to_a_person_even_if_the_model_passes_it(
    tiny_clip_dir, use_model, queued
):
    from listings.services.scoring import listing_score
    from listings.tests.conftest import PASS_ALL
    from listings.tests.factories import ListingImageFactory

    use_model(tiny_clip_dir, PASS_ALL)  # the model passes everything
    item = ListingImageFactory().listing
    listing_request_scoring(listing_id=item.pk)
    Listing.objects.filter(pk=item.pk).update(status=Status.REVIEW)  # e.g. an audit
    decide(item, moderator("alice"), "reject", reason_code="prohibited")

    Listing.objects.filter(pk=item.pk).update(description="Same thing. ")
    listing_request_scoring(listing_id=item.pk)
    listing_score(listing_id=item.pk)

    listing = Listing.objects.get(pk=item.pk)
    assert listing.status == Status.REVIEW
    assert listing.queue_reason == "edited_after_rejection"
    assert listing.score.verdict == "pass"
    assert "a person looks again" in " ".join(listing.score.reasons)


def test_escalating_needs_a_note_and_the_seller_gets_the_default_message():
    item = queue_item(title_similarity=0.25)
    alice = moderator("alice")
    with pytest.raises(ValueError, match="Escalating needs a note"):
        decide(item, alice, "escalate", note="  ")
    assert not ListingDecision.objects.filter(actor=alice).exists()
    decision = decide(item, alice, "escalate", note="Replica?")
    assert (decision.reason, decision.seller_message) == (
        "Replica?",
        "A senior moderator will take a second look at the listing.",
    )


def test_undo_takes_the_decision_back_as_its_own_row_and_reclaims_the_item():
    item = queue_item(status="held", title_similarity=0.1)
    before = Listing.objects.get(pk=item.pk)
    alice = moderator("alice")
    rejection = decide(item, alice, "reject", reason_code="wrong_image")

    undo = review_undo(decision_id=rejection.pk, moderator=alice)

    assert (undo.from_status, undo.to_status, undo.undoes) == (
        "rejected",
        "held",
        rejection,
    )
    assert undo.seller_message == (
        "A moderator took the last decision back; the listing is in review again."
    )
    listing = Listing.objects.get(pk=item.pk)
    assert (listing.status, listing.claimed_by, listing.queue_reason) == (
        "held",
        alice,
        before.queue_reason,
    )
    assert listing.queued_for_review_at == before.queued_for_review_at
    with pytest.raises(TransitionNotAllowed, match="no decision of yours to undo"):
        review_undo(decision_id=undo.pk, moderator=alice)


def test_undo_is_refused_to_others_after_the_window_and_once_the_listing_moved_on(
    settings,
):
    item = queue_item(title_similarity=0.25)
    alice, bob = moderator("alice"), moderator("bob")
    approval = decide(item, alice, "approve")
    with pytest.raises(TransitionNotAllowed, match="no decision of yours"):
        review_undo(decision_id=approval.pk, moderator=bob)
    late = approval.created_at + timedelta(seconds=31)
    with pytest.raises(TransitionNotAllowed, match="window closed 30 seconds"):
        review_undo(decision_id=approval.pk, moderator=alice, now=late)
    # The seller edits it: back to pending.
    listing_transition(listing=item, to_status="pending", reason_code="content")
    with pytest.raises(TransitionNotAllowed, match="the listing has moved on"):
        review_undo(decision_id=approval.pk, moderator=alice)
    assert ListingDecision.objects.filter(reason_code="undo").count() == 0


def test_handling_time_runs_from_the_claim_to_the_decision_per_moderator():
    from listings.selectors import dashboard

    item = queue_item(title_similarity=0.25)
    alice = moderator("alice")
    claimed_at = timezone.now() - timedelta(hours=2)
    review_claim(listing_id=item.pk, moderator=alice, now=claimed_at)
    decide(item, alice, "approve", now=claimed_at + timedelta(seconds=42))

    data = dashboard()

    assert data.handling_seconds_median == 42.0
    assert data.handling_per_moderator == [("alice", 42.0, 1)]
