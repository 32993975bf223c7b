"""Rescoring after an activation, and shadow scoring: batches of ids, repeatable."""

import json

import pytest

from clipmatch.services import (
    model_version_activate,
    model_version_register,
    model_version_shadow,
)
from conftest import build_tiny_clip
from listings.models import Listing
from listings.services.rescoring import (
    catalog_rescore_queue,
    listings_rescore_batch,
    listings_shadow_batch,
)
from listings.services.scoring import listing_request_scoring, listing_score
from listings.tests.conftest import PASS_ALL, REVIEW_ALL
from listings.tests.factories import ListingImageFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored(tiny_clip_dir, use_model, queued):
    use_model(tiny_clip_dir, REVIEW_ALL)
    listings = [ListingImageFactory().listing for _ in range(5)]
    for listing in listings:
        listing_request_scoring(listing_id=listing.pk)
        listing_score(listing_id=listing.pk)
    return listings


@pytest.fixture
def activated(tmp_path, monkeypatch):
    path = build_tiny_clip(tmp_path / "tiny-b", seed=1)
    meta = json.loads((path / "clipmatch.json").read_text())
    (path / "clipmatch.json").write_text(json.dumps(meta))
    version, _ = model_version_register(path=str(path), report={"accepted": True})
    monkeypatch.setattr("listings.signals.queue_catalog_rescore", lambda pk: None)
    staff = UserFactory(username="lead", is_staff=True)
    model_version_activate(version=version, actor=staff)
    return version


def test_the_catalog_is_queued_in_batches_of_ids(scored, activated, queued_tasks):
    report = catalog_rescore_queue(model_version_id=activated.pk, batch_size=2)

    ids = sorted(x.pk for x in scored)
    assert report.batches == 3
    assert queued_tasks == [
        ("listings.tasks.rescore_batch", activated.pk, ids[0:2]),
        ("listings.tasks.rescore_batch", activated.pk, ids[2:4]),
        ("listings.tasks.rescore_batch", activated.pk, ids[4:5]),
    ]


def test_a_batch_rescores_with_the_new_version_and_a_repeat_queues_nothing(
    scored, activated, queued_tasks
):
    ids = [x.pk for x in scored]

    report = listings_rescore_batch(model_version_id=activated.pk, listing_ids=ids)

    assert report.outcomes == {"rescored": 5}
    for listing in scored:
        listing.refresh_from_db()
        assert listing.score.model_version == activated
    assert catalog_rescore_queue(model_version_id=activated.pk).batches == 0
    assert queued_tasks == []


def test_a_batch_for_a_version_no_longer_active_does_nothing(scored, activated):
    old = Listing.objects.get(pk=scored[0].pk).score.model_version

    report = listings_rescore_batch(
        model_version_id=old.pk, listing_ids=[x.pk for x in scored]
    )

    assert report.skipped == f"{activated} is active now"
    assert report.outcomes == {}
    assert all(Listing.objects.get(pk=x.pk).score.model_version == old for x in scored)


@pytest.fixture
def candidate(tmp_path):
    """A registered candidate whose own thresholds pass everything."""
    path = build_tiny_clip(tmp_path / "tiny-c", seed=2)
    meta = json.loads((path / "clipmatch.json").read_text())
    meta["thresholds"] = PASS_ALL
    (path / "clipmatch.json").write_text(json.dumps(meta))
    version, _ = model_version_register(path=str(path), report={"accepted": True})
    return version


def test_a_shadow_candidate_scores_beside_the_active_model_and_never_routes(
    scored, candidate, monkeypatch
):
    from listings.labels import shadow_comparison
    from listings.models import ListingScore

    monkeypatch.setattr("listings.signals.queue_catalog_shadow", lambda pk: None)
    staff = UserFactory(username="lead", is_staff=True)
    model_version_shadow(version=candidate, actor=staff)
    ids = [x.pk for x in scored]

    report = listings_shadow_batch(model_version_id=candidate.pk, listing_ids=ids)
    again = listings_shadow_batch(model_version_id=candidate.pk, listing_ids=ids)

    assert report.outcomes == {"shadow_scored": 5}
    assert again.outcomes == {"exists": 5}
    for listing in scored:
        listing.refresh_from_db()
        assert listing.status == Listing.Status.REVIEW
        assert listing.score.model_version != candidate
        shadow = ListingScore.objects.get(listing=listing, model_version=candidate)
        assert shadow.shadow is True
        assert shadow.content_hash == listing.content_hash
        assert shadow.verdict == "pass"  # the candidate's own thresholds
    assert shadow_comparison(candidate_id=candidate.pk) == {
        "compared": 5,
        "verdicts": {"review->pass": 5},
    }


def test_scoring_queues_the_shadow_candidate_after_commit(
    tiny_clip_dir,
    use_model,
    candidate,
    monkeypatch,
    queued_tasks,
    django_capture_on_commit_callbacks,
):
    use_model(tiny_clip_dir, REVIEW_ALL)
    monkeypatch.setattr("listings.signals.queue_catalog_shadow", lambda pk: None)
    model_version_shadow(version=candidate, actor=UserFactory(is_staff=True))
    listing = ListingImageFactory().listing
    listing_request_scoring(listing_id=listing.pk)

    with django_capture_on_commit_callbacks(execute=True):
        listing_score(listing_id=listing.pk)

    assert queued_tasks == [("listings.tasks.score_shadow", listing.pk)]


def test_activating_the_candidate_ends_its_shadow_and_its_scores_then_route(
    scored, candidate, monkeypatch
):
    monkeypatch.setattr("listings.signals.queue_catalog_shadow", lambda pk: None)
    monkeypatch.setattr("listings.signals.queue_catalog_rescore", lambda pk: None)
    staff = UserFactory(username="lead", is_staff=True)
    model_version_shadow(version=candidate, actor=staff)
    listings_shadow_batch(model_version_id=candidate.pk, listing_ids=[scored[0].pk])

    model_version_activate(version=candidate, actor=staff)
    listings_rescore_batch(model_version_id=candidate.pk, listing_ids=[scored[0].pk])

    candidate.refresh_from_db()
    assert candidate.is_active and not candidate.is_shadow
    listing = Listing.objects.get(pk=scored[0].pk)
    assert listing.score.model_version == candidate
    assert listing.score.shadow is False
    assert listing.status == Listing.Status.PASSED
