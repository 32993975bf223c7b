"""The set-based rescore (`rescore --stale`, rescore batches): the same listings,
transitions and audit rows as rescoring one by one, with bulk reads and writes."""

import pytest
from django.core.files.base import ContentFile
from django.db import transaction

from conftest import png_bytes
from listings.models import Listing, ListingDecision, ListingScore
from listings.services import rescoring
from listings.services.rescoring import listing_rescore, listings_rescore
from listings.services.scoring import listing_request_scoring, listing_score
from listings.tests.conftest import HOLD_ALL, PASS_ALL, REVIEW_ALL
from listings.tests.factories import ListingImageFactory

pytestmark = pytest.mark.django_db
Status = Listing.Status


def scored_catalog(count: int) -> list[int]:
    ids = []
    for n in range(count):
        photo = ContentFile(png_bytes(colour=(10 + 35 * n, 90, 200 - 20 * n)), "p.png")
        listing = ListingImageFactory(image=photo, listing__title=f"item {n}").listing
        if n % 2:
            ListingImageFactory(listing=listing, position=1)
        listing_request_scoring(listing_id=listing.pk)
        listing_score(listing_id=listing.pk)
        ids.append(listing.pk)
    return ids


def snapshot(ids: list[int]) -> dict:
    """What a rescore decides, without its times."""
    listings = Listing.objects.filter(pk__in=ids).order_by("pk")
    return {
        "listings": [
            (
                listing.status,
                listing.queue_reason,
                listing.queued_for_review_at is not None,
                round(listing.review_priority, 6),
                listing.score.verdict,
                listing.score.reasons,
                listing.score.images,
                listing.score.thresholds,
                listing.score.audit_sample,
            )
            for listing in listings
        ],
        "scores": ListingScore.objects.filter(listing_id__in=ids).count(),
        "decisions": list(
            ListingDecision.objects.filter(listing_id__in=ids)
            .order_by("listing_id", "id")
            .values_list(
                "listing_id",
                "from_status",
                "to_status",
                "reason_code",
                "reason",
                "seller_message",
                "model_version",
                "score",
                "thresholds",
                "model_verdict",
                "actor",
            )
        ),
    }


def middle_thresholds(ids: list[int]) -> dict:
    """Cuts among the catalog's own similarities, so that a change moves some
    listings each way."""
    sims = sorted(
        image["title"]
        for score in ListingScore.objects.filter(listing_id__in=ids)
        for image in score.images
    )
    cuts = {"pass": sims[len(sims) * 2 // 3], "hold": sims[len(sims) // 3]}
    return {"title": cuts, "description": {"pass": -1.0, "hold": -1.0}}


def test_a_set_rescore_decides_exactly_what_one_by_one_rescores_decide(
    use_model, tiny_clip_dir, queued
):
    from clipmatch.services import model_version_active

    use_model(tiny_clip_dir, REVIEW_ALL)
    ids = scored_catalog(7)
    use_model(tiny_clip_dir, PASS_ALL)
    listing_rescore(listing_id=ids[0])  # one passed listing among those in review
    use_model(tiny_clip_dir, middle_thresholds(ids))
    active = model_version_active()

    with transaction.atomic():
        for listing_id in ids:
            listing_rescore(listing_id=listing_id, active=active)
        one_by_one = snapshot(ids)
        transaction.set_rollback(True)
    outcomes = listings_rescore(listing_ids=ids, active=active)

    assert outcomes == {"rescored": 7}
    assert snapshot(ids) == one_by_one
    statuses = {row[0] for row in one_by_one["listings"]}
    assert statuses == {"passed", "review", "held"}  # the test moves each way


def test_a_threshold_change_rescores_a_set_without_files_or_model(
    tiny_model, use_model, tiny_clip_dir, queued, monkeypatch
):
    from clipmatch.services import model_version_active

    ids = scored_catalog(3)
    for listing in Listing.objects.filter(pk__in=ids):
        for image in listing.images.all():
            image.image.storage.delete(image.image.name)

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("clipmatch.services.get_engine", no_model)
    use_model(tiny_clip_dir, HOLD_ALL)

    outcomes = listings_rescore(listing_ids=ids, active=model_version_active())

    assert outcomes == {"rescored": 3}
    assert set(Listing.objects.values_list("status", flat=True)) == {"held"}
    decision = ListingDecision.objects.order_by("id").last()
    assert (decision.from_status, decision.to_status, decision.reason_code) == (
        "passed",
        "held",
        "rescored",
    )
    assert ListingScore.objects.count() == 3


def test_a_set_rescore_leaves_people_pending_and_changed_listings_alone(
    tiny_model, use_model, tiny_clip_dir, queued, monkeypatch
):
    from clipmatch.services import model_version_active
    from listings.tests.factories import UserFactory

    approved, pending, edited, plain = scored_catalog(4)
    person = UserFactory(is_staff=True)
    from listings.services.transitions import listing_transition

    listing_transition(
        listing=Listing.objects.get(pk=approved),
        to_status=Status.REVIEW,
        reason_code="scored_review",
    )
    listing_transition(
        listing=Listing.objects.get(pk=approved),
        to_status=Status.APPROVED,
        actor=person,
        reason_code="approved",
    )
    Listing.objects.filter(pk=pending).update(status=Status.PENDING)
    real = rescoring.listings_assess_stored

    def assess_then_seller_edits(listings, active):
        result = real(listings, active)
        changed = Listing.objects.get(pk=edited)
        changed.title = "something else entirely"
        changed.save()
        return result

    monkeypatch.setattr(rescoring, "listings_assess_stored", assess_then_seller_edits)
    use_model(tiny_clip_dir, HOLD_ALL)

    outcomes = listings_rescore(
        listing_ids=[approved, pending, edited, plain, 10**9],
        active=model_version_active(),
    )

    assert outcomes == {"skipped": 2, "superseded": 1, "rescored": 1, "missing": 1}
    statuses = dict(Listing.objects.values_list("pk", "status"))
    assert [statuses[i] for i in (approved, pending, edited, plain)] == [
        "approved",
        "pending",
        "pending",
        "held",
    ]


def test_a_set_rescore_costs_the_same_queries_for_a_few_or_many_listings(
    tiny_model, use_model, tiny_clip_dir, queued, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from clipmatch.services import model_version_active

    ids = scored_catalog(8)
    use_model(tiny_clip_dir, HOLD_ALL)
    active = model_version_active()
    counts = []
    for chunk in (ids[:2], ids[2:]):
        with CaptureQueriesContext(connection) as queries:
            listings_rescore(listing_ids=chunk, active=active)
        counts.append(len(queries))

    assert counts[0] == counts[1]
    assert set(Listing.objects.values_list("status", flat=True)) == {"held"}
