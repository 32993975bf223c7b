"""Scoring several pending listings in one task: one forward per tower, and every
guarantee of scoring one listing kept for each member of the batch."""

import time
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from conftest import png_bytes, wait_for
from listings.models import Listing, ListingScore, ScoringAttempt
from listings.services import scoring
from listings.services.reconcile import scoring_reconcile
from listings.services.scoring import listing_request_scoring, listing_score
from listings.tests.factories import ListingFactory, ListingImageFactory

Status = Listing.Status


def pending_listings(count: int) -> list[Listing]:
    """Pending listings, each with a photo of its own (no shared cached vector)."""
    listings = []
    for n in range(count):
        photo = ContentFile(png_bytes(colour=(10 + 20 * n, 30, 30)), name="p.png")
        listing = ListingImageFactory(image=photo).listing
        listing_request_scoring(listing_id=listing.pk)
        listing.refresh_from_db()
        listings.append(listing)
    return listings


def statuses(listings) -> list[str]:
    return [Listing.objects.get(pk=listing.pk).status for listing in listings]


@pytest.fixture
def forwards(monkeypatch):
    """The number of images in each image forward the engine runs."""
    from clipmatch.inference.engine import ClipEngine

    sizes = []
    real = ClipEngine.embed_images

    def counted(self, images, batch_size=None):
        sizes.append(len(images))
        return real(self, images, batch_size)

    monkeypatch.setattr(ClipEngine, "embed_images", counted)
    return sizes


@pytest.mark.django_db
def test_one_task_scores_its_batch_mates_in_one_forward_and_their_tasks_do_nothing(
    tiny_model, queued, forwards, settings
):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "SCORING_BATCH_LISTINGS": 3}
    listings = pending_listings(4)

    first = listing_score(listing_id=listings[0].pk)

    assert first.outcome == "scored"
    assert statuses(listings) == ["passed", "passed", "passed", "pending"]
    assert forwards == [3]
    assert listing_score(listing_id=listings[1].pk).outcome == "not_pending"
    assert listing_score(listing_id=listings[3].pk).outcome == "scored"
    assert ScoringAttempt.objects.filter(outcome="scored").count() == 4
    assert ListingScore.objects.count() == 4


@pytest.mark.django_db
def test_a_burst_is_split_between_the_workers_by_fair_shares(
    tiny_model, queued, forwards, settings
):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "SCORING_BATCH_LISTINGS": 8}
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 2}
    listings = pending_listings(9)

    outcomes = [listing_score(listing_id=listing.pk).outcome for listing in listings]

    # 9 waiting on 2 workers: 5 (its own and 4), then 2 of the 4 left, 1, 1.
    assert forwards == [5, 2, 1, 1]
    assert outcomes.count("scored") == 4
    assert statuses(listings) == ["passed"] * 9


@pytest.mark.django_db
def test_one_worker_takes_a_whole_batch(tiny_model, queued, forwards, settings):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "SCORING_BATCH_LISTINGS": 8}
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 1}
    listings = pending_listings(9)

    listing_score(listing_id=listings[0].pk)

    assert forwards == [8]


@pytest.mark.django_db
def test_batch_mates_of_a_listing_with_a_corrupt_image_are_scored(
    tiny_model, queued, forwards
):
    broken, *others = pending_listings(3)
    image = broken.images.get()
    image.image.save(
        "broken.png", ContentFile(b"\x89PNG\r\n\x1a\n not really"), save=False
    )
    image.save()  # a new content hash, requested again

    outcome = listing_score(listing_id=broken.pk)

    broken.refresh_from_db()
    assert outcome.outcome == "failed"
    assert broken.status == Status.REVIEW
    assert broken.scoring_error.startswith("Scoring failed: Image 1: Unreadable image")
    assert statuses(others) == ["passed", "passed"]
    assert forwards == [2]


@pytest.mark.django_db
def test_a_file_storage_cannot_read_fails_only_its_listing(tiny_model, queued):
    lost, *others = pending_listings(3)
    lost.images.get().image.delete(save=False)

    outcome = listing_score(listing_id=others[0].pk)

    assert outcome.outcome == "scored"
    assert statuses(others) == ["passed", "passed"]
    attempt = ScoringAttempt.objects.get(listing=lost)
    assert (attempt.outcome, attempt.retry_after is not None) == ("failed", True)
    assert "Image 1: the file cannot be read" in attempt.error
    assert Listing.objects.get(pk=lost.pk).status == Status.PENDING


@pytest.mark.django_db
def test_a_model_error_fails_each_member_for_a_retry_and_passes_none(
    tiny_model, queued, monkeypatch
):
    from clipmatch.inference.engine import ClipEngine

    listings = pending_listings(3)
    calls = []

    def broken(self, images, batch_size=None):
        calls.append(len(images))
        raise RuntimeError("CUDA error: device-side assert")

    monkeypatch.setattr(ClipEngine, "embed_images", broken)

    outcome = listing_score(listing_id=listings[0].pk)

    assert outcome.outcome == "retry"
    assert calls == [3, 1, 1, 1]  # the batch, then each member alone
    assert statuses(listings) == ["pending"] * 3
    attempts = ScoringAttempt.objects.order_by("listing_id")
    assert [a.outcome for a in attempts] == ["failed"] * 3
    assert {a.error for a in attempts} == {
        "RuntimeError: CUDA error: device-side assert"
    }
    assert all(a.retry_after for a in attempts)
    assert not ListingScore.objects.exists()


@pytest.mark.django_db
def test_members_that_only_fail_together_are_scored_each_alone(
    tiny_model, queued, monkeypatch
):
    from clipmatch.inference.engine import ClipEngine

    listings = pending_listings(3)
    real = ClipEngine.embed_images

    def fails_in_batches(self, images, batch_size=None):
        if len(images) > 1:
            raise MemoryError("out of memory")
        return real(self, images, batch_size)

    monkeypatch.setattr(ClipEngine, "embed_images", fails_in_batches)

    listing_score(listing_id=listings[0].pk)

    assert statuses(listings) == ["passed"] * 3


@pytest.mark.django_db
def test_a_mate_edited_while_its_batch_is_scored_is_superseded_not_routed(
    tiny_model, queued, monkeypatch
):
    leader, mate = pending_listings(2)
    real = scoring.contents_assess

    def assess_then_seller_edits(contents, active):
        result = real(contents, active)
        edited = Listing.objects.get(pk=mate.pk)
        edited.title = "a completely different title"
        edited.save()
        return result

    monkeypatch.setattr(scoring, "contents_assess", assess_then_seller_edits)

    assert listing_score(listing_id=leader.pk).outcome == "scored"

    mate.refresh_from_db()
    assert mate.status == Status.PENDING
    assert mate.score is None
    assert ScoringAttempt.objects.get(listing=mate).outcome == "superseded"
    assert not ListingScore.objects.filter(listing=mate).exists()


@pytest.mark.django_db
def test_listings_being_scored_backing_off_or_failed_too_often_are_not_claimed(
    tiny_model, queued, settings
):
    leader, running, backing_off, exhausted = pending_listings(4)
    now = timezone.now()
    ScoringAttempt.objects.create(
        listing=running, content_hash=running.content_hash, started_at=now
    )
    ScoringAttempt.objects.create(
        listing=backing_off,
        content_hash=backing_off.content_hash,
        started_at=now,
        outcome="failed",
        retry_after=now + timedelta(seconds=30),
    )
    for _ in range(settings.CLIPMATCH["SCORING_MAX_ATTEMPTS"]):
        ScoringAttempt.objects.create(
            listing=exhausted,
            content_hash=exhausted.content_hash,
            started_at=now - timedelta(minutes=10),
            outcome="failed",
        )

    listing_score(listing_id=leader.pk)

    assert statuses([leader, running, backing_off, exhausted]) == [
        "passed",
        "pending",
        "pending",
        "pending",
    ]
    assert ScoringAttempt.objects.filter(listing=leader).count() == 1
    assert ScoringAttempt.objects.filter(listing=running).count() == 1


@pytest.mark.django_db
def test_the_reconciler_recovers_a_batch_whose_worker_died(
    tiny_model, queued, django_capture_on_commit_callbacks
):
    listings = pending_listings(3)
    attempts, done = scoring._claim(listings[0].pk)  # committed; then the worker dies
    assert done is None and len(attempts) == 3
    queued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        report = scoring_reconcile(now=timezone.now() + timedelta(seconds=301))

    ids = sorted(listing.pk for listing in listings)
    assert sorted(report.abandoned) == ids
    assert sorted(report.requeued) == ids
    assert sorted(queued) == ids
    for listing_id in ids:
        listing_score(listing_id=listing_id)
    assert statuses(listings) == ["passed"] * 3
    outcomes = sorted(ScoringAttempt.objects.values_list("outcome", flat=True))
    assert outcomes == ["abandoned"] * 3 + ["scored"] * 3


@pytest.mark.django_db
def test_a_batch_whose_task_reported_failure_is_closed_without_waiting(
    tiny_model, queued, django_capture_on_commit_callbacks
):
    from uuid import uuid4

    from django_q.models import Task

    leader, mate = pending_listings(2)
    attempts, _ = scoring._claim(leader.pk)
    stopped = timezone.now() + timedelta(seconds=2)
    Task.objects.create(
        id=uuid4().hex,
        name=f"score-listing-{leader.pk}",
        func="listings.tasks.score_listing",
        started=stopped,
        stopped=stopped,
        success=False,
        result="Traceback...\nTimeoutError: task timed out",
    )
    queued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        report = scoring_reconcile(now=timezone.now() + timedelta(seconds=30))

    assert sorted(report.abandoned) == sorted([leader.pk, mate.pk])
    assert sorted(queued) == sorted([leader.pk, mate.pk])
    errors = set(ScoringAttempt.objects.values_list("error", flat=True))
    assert errors == {"The scoring task failed: TimeoutError: task timed out"}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_real_workers_never_score_the_same_content_twice(
    tiny_model, worker_env, tmp_path
):
    from listings.workers import qcluster_start, qcluster_stop

    env = {**worker_env, "CLIPMATCH_SCORING_BATCH_LISTINGS": "3"}
    clusters = []
    logs = [tmp_path / f"qcluster-{n}.log" for n in range(2)]
    try:
        for log_path in logs:
            with log_path.open("w") as log:
                clusters.append(qcluster_start(env=env, log=log))
        # Both workers hold their model before any work exists: else the one that
        # warms up first can take every task, and nothing is contended.
        for log_path in logs:
            wait_for(
                lambda log_path=log_path: "Model ready" in log_path.read_text(),
                120,
                "the worker to load its model",
                log_path,
            )
        listings = []
        for _ in range(24):
            listing = ListingFactory()
            ListingImageFactory(listing=listing)
            listings.append(listing)
            time.sleep(0.05)

        def all_routed():
            return not Listing.objects.filter(status=Status.PENDING).exists()

        wait_for(all_routed, 120, "both workers to score every listing", logs[0])
    finally:
        for process in clusters:
            qcluster_stop(process, grace=5)

    assert statuses(listings) == ["passed"] * 24
    scored = list(
        ScoringAttempt.objects.filter(outcome="scored").values_list(
            "listing_id", flat=True
        )
    )
    assert sorted(scored) == sorted(listing.pk for listing in listings)
    assert ListingScore.objects.count() == 24
    workers = set(ScoringAttempt.objects.values_list("worker", flat=True))
    assert len(workers) == 2, "one worker did everything: nothing was contended"
