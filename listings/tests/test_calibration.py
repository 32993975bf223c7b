"""Thresholds proposed from moderators' decisions, applied by staff, versioned."""

import json
import random
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from clipmatch.models import ModelAuditEntry, ThresholdVersion
from clipmatch.services import (
    ModelVersionError,
    model_version_active,
    threshold_version_apply,
    threshold_version_propose,
)
from listings.labels import listings_labelled_by_decisions
from listings.models import Listing, ListingScore
from listings.selectors import listings_for_rescore
from listings.services.calibration import thresholds_propose_from_decisions
from listings.services.rescoring import listing_rescore
from listings.services.scoring import listing_request_scoring, listing_score
from listings.services.transitions import listing_transition
from listings.tests.conftest import PASS_ALL, REVIEW_ALL
from listings.tests.factories import (
    CategoryFactory,
    ListingFactory,
    ListingImageFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
Status = Listing.Status


@pytest.fixture
def moderator():
    return UserFactory(username="mod", is_staff=True)


def decided_listing(*, active, category, similarity, label, moderator, reason=None):
    """A listing the active model scored, then a moderator approved or rejected."""
    listing = ListingImageFactory(listing__category=category).listing
    listing_transition(listing=listing, to_status=Status.REVIEW, reason_code="x")
    score = ListingScore.objects.create(
        listing=listing,
        model_version=active.version,
        content_hash=f"c{listing.pk}",
        verdict="review",
        similarity=similarity,
        thresholds=active.thresholds.as_dict(),
        images=[{"index": 1, "title": similarity, "description": None}],
        computed_at=timezone.now(),
    )
    listing.score = score
    listing.save(update_fields=["score"])
    if label == 1:
        listing_transition(
            listing=listing,
            to_status=Status.APPROVED,
            actor=moderator,
            reason_code="ok",
        )
    else:
        listing_transition(
            listing=listing,
            to_status=Status.REJECTED,
            actor=moderator,
            reason_code=reason or "wrong_image",
        )
    return listing


@pytest.fixture
def decisions(tiny_clip_dir, use_model, moderator):
    """200 decisions: mismatches score lower than matches, with some overlap; mugs
    score 0.1 higher than everything else."""
    use_model(tiny_clip_dir, REVIEW_ALL)
    active = model_version_active()
    mug, lamp = CategoryFactory(name="mug"), CategoryFactory(name="lamp")
    rng = random.Random(7)
    made = []
    for n in range(200):
        category = mug if n % 5 else lamp
        label = int(rng.random() < 0.6)
        similarity = rng.uniform(0.35, 0.6) if label else rng.uniform(0.1, 0.4)
        if category == mug:
            similarity += 0.1
        reason = rng.choice(["wrong_image", "wrong_category", "misleading_description"])
        made.append(
            decided_listing(
                active=active,
                category=category,
                similarity=similarity,
                label=label,
                moderator=moderator,
                reason=reason,
            )
        )
    return made


def test_only_approvals_and_mismatch_rejections_are_labels(
    tiny_clip_dir, use_model, moderator
):
    use_model(tiny_clip_dir, REVIEW_ALL)
    active = model_version_active()
    category = CategoryFactory(name="mug")
    kept = [
        decided_listing(
            active=active,
            category=category,
            similarity=0.5,
            label=1,
            moderator=moderator,
        ),
        decided_listing(
            active=active,
            category=category,
            similarity=0.2,
            label=0,
            moderator=moderator,
            reason="misleading_description",
        ),
    ]
    for reason in ("prohibited", "other"):
        decided_listing(
            active=active,
            category=category,
            similarity=0.2,
            label=0,
            moderator=moderator,
            reason=reason,
        )

    labelled = listings_labelled_by_decisions()

    assert [(r.listing_id, r.label) for r in labelled] == [
        (kept[0].pk, 1),
        (kept[1].pk, 0),
    ]


def test_the_proposal_reaches_its_target_precision_on_held_out_decisions(decisions):
    proposal = thresholds_propose_from_decisions(target=0.9, min_decisions=30)

    thresholds = proposal.thresholds
    assert proposal.status == ThresholdVersion.Status.PROPOSED
    assert set(thresholds["categories"]) == {"mug"}  # lamps: too few, global cuts
    held_out = decisions[-60:]  # the newest 30%, never used to choose the cuts
    held = [
        listing
        for listing in held_out
        if listing.score.similarity
        < thresholds["categories"].get(listing.category.name, thresholds)["title"][
            "hold"
        ]
    ]
    mismatches = [x for x in held if x.status == Status.REJECTED]
    precision = len(mismatches) / len(held)
    all_mismatches = [x for x in held_out if x.status == Status.REJECTED]
    figures = proposal.figures["held_out"]
    assert figures["n"] == 60
    assert figures["hold"]["title"]["held"] == len(held)
    assert figures["hold"]["title"]["hold_precision"] == pytest.approx(precision)
    assert precision >= 0.9
    assert figures["hold"]["listing"]["hold_precision"] == pytest.approx(precision)
    assert len(mismatches) / len(all_mismatches) >= 0.5  # it does hold mismatches
    assert (
        thresholds["categories"]["mug"]["title"]["hold"] > thresholds["title"]["hold"]
    )
    assert proposal.figures["target_precision"] == 0.9


def test_a_proposal_changes_routing_only_once_applied_and_only_for_later_scores(
    tiny_clip_dir, use_model, moderator, queued
):
    use_model(tiny_clip_dir, REVIEW_ALL)
    before = ListingImageFactory().listing
    listing_request_scoring(listing_id=before.pk)
    listing_score(listing_id=before.pk)
    active = model_version_active()
    proposal = threshold_version_propose(
        version=active.version, thresholds={**PASS_ALL, "category_top_k": 0}, figures={}
    )
    proposed_only = ListingImageFactory().listing
    listing_request_scoring(listing_id=proposed_only.pk)
    listing_score(listing_id=proposed_only.pk)

    threshold_version_apply(proposal=proposal, actor=moderator)
    after = ListingImageFactory().listing
    listing_request_scoring(listing_id=after.pk)
    listing_score(listing_id=after.pk)

    for listing in (before, proposed_only, after):
        listing.refresh_from_db()
    assert before.status == Status.REVIEW
    assert before.score.threshold_version is None
    assert proposed_only.status == Status.REVIEW
    assert after.status == Status.PASSED
    assert after.score.threshold_version == proposal
    assert after.score.thresholds["title"] == PASS_ALL["title"]
    stale = set(
        listings_for_rescore(
            active=model_version_active(), stale_only=True
        ).values_list("pk", flat=True)
    )
    assert stale == {before.pk, proposed_only.pk}

    assert listing_rescore(listing_id=before.pk).status == Status.PASSED
    before.refresh_from_db()
    assert before.score.threshold_version == proposal


def test_applying_needs_staff_and_a_proposal_applies_once(
    tiny_clip_dir, use_model, moderator
):
    use_model(tiny_clip_dir, REVIEW_ALL)
    active = model_version_active()
    proposal = threshold_version_propose(
        version=active.version, thresholds={**PASS_ALL}, figures={}
    )

    with pytest.raises(ModelVersionError, match="Only a staff user"):
        threshold_version_apply(proposal=proposal, actor=UserFactory())
    entry = threshold_version_apply(proposal=proposal, actor=moderator)
    with pytest.raises(ModelVersionError, match="are applied, not proposed"):
        threshold_version_apply(proposal=proposal, actor=moderator)

    assert entry.action == ModelAuditEntry.Action.THRESHOLDS_APPLIED
    assert entry.threshold_version == proposal
    assert entry.actor == moderator
    proposal.refresh_from_db()
    assert proposal.applied_by == moderator


def test_calibrate_thresholds_command_proposes_then_applies(decisions, moderator):
    out = StringIO()
    call_command("calibrate_thresholds", "--json", stdout=out)
    result = json.loads(out.getvalue())
    proposal = ThresholdVersion.objects.get(pk=result["proposal"])
    assert proposal.status == "proposed"
    assert result["figures"]["decisions"] == 200

    with pytest.raises(CommandError, match="--apply needs --by STAFF_USER"):
        call_command("calibrate_thresholds", "--apply", str(proposal.pk))
    out = StringIO()
    call_command(
        "calibrate_thresholds", "--apply", str(proposal.pk), "--by", "mod", stdout=out
    )

    proposal.refresh_from_db()
    assert proposal.status == "applied"
    assert model_version_active().threshold_version == proposal
    assert f"Thresholds #{proposal.pk} apply to listings scored from now on" in (
        out.getvalue()
    )


def test_calibration_refuses_without_enough_decisions(tiny_clip_dir, use_model):
    use_model(tiny_clip_dir, REVIEW_ALL)
    ListingFactory()

    with pytest.raises(CommandError, match="Only 0 decided listings were scored"):
        call_command("calibrate_thresholds")
