"""The reconciler: the database, not the queue, decides what still needs scoring."""

from datetime import timedelta

import pytest
from django.utils import timezone

from listings.models import Listing, ScoringAttempt
from listings.services.reconcile import scoring_reconcile
from listings.services.scoring import listing_request_scoring, listing_score
from listings.tests.factories import ListingImageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(queued):
    listing = ListingImageFactory().listing
    listing_request_scoring(listing_id=listing.pk)
    queued.clear()
    listing.refresh_from_db()
    return listing


def later(seconds: int):
    return timezone.now() + timedelta(seconds=seconds)


@pytest.fixture
def reconcile(django_capture_on_commit_callbacks):
    """One reconciler pass whose queueing runs, as it would after its commit."""

    def run(now):
        with django_capture_on_commit_callbacks(execute=True):
            return scoring_reconcile(now=now)

    return run


def test_a_freshly_queued_listing_is_left_to_the_queue(pending, queued, reconcile):
    report = reconcile(later(10))

    assert report.waiting == [pending.pk]
    assert queued == []


def test_a_task_lost_by_the_queue_is_queued_again(pending, queued, reconcile):
    report = reconcile(later(301))

    assert report.requeued == [pending.pk]
    assert queued == [pending.pk]


def test_a_worker_that_died_mid_task_is_detected_and_the_listing_requeued(
    pending, queued, reconcile
):
    ScoringAttempt.objects.create(
        listing=pending, content_hash=pending.content_hash, started_at=timezone.now()
    )

    assert reconcile(later(60)).waiting == [pending.pk]
    report = reconcile(later(301))

    attempt = ScoringAttempt.objects.get(listing=pending)
    assert report.abandoned == [pending.pk]
    assert report.requeued == [pending.pk]
    assert attempt.outcome == "abandoned"
    assert (
        attempt.error == "The worker stopped before it finished (killed or timed out)."
    )
    assert queued == [pending.pk]


def test_a_listing_that_keeps_failing_is_quarantined_in_review(
    pending, queued, reconcile
):
    for _ in range(3):
        ScoringAttempt.objects.create(
            listing=pending,
            content_hash=pending.content_hash,
            started_at=timezone.now(),
            finished_at=timezone.now(),
            outcome="abandoned",
            error="The worker stopped before it finished (killed or timed out).",
        )

    report = reconcile(later(1))

    pending.refresh_from_db()
    assert report.quarantined == [pending.pk]
    assert pending.status == Listing.Status.REVIEW
    assert pending.scoring_error == (
        "Scoring failed 3 times; last error: The worker stopped before it finished "
        "(killed or timed out)."
    )
    assert queued == []


def test_a_failed_attempt_is_retried_only_after_its_back_off(
    pending, queued, use_model, tmp_path, reconcile
):
    (tmp_path / "config.json").write_text("{}")
    use_model(
        tmp_path,
        {"title": {"pass": 0, "hold": 0}, "description": {"pass": 0, "hold": 0}},
    )
    listing_score(listing_id=pending.pk)

    early = reconcile(later(10))
    due = reconcile(later(31))

    assert early.waiting == [pending.pk]
    assert due.requeued == [pending.pk]
    assert queued == [pending.pk]


def test_routed_listings_are_not_touched(pending, queued, reconcile):
    Listing.objects.filter(pk=pending.pk).update(status=Listing.Status.PASSED)

    report = reconcile(later(1000))

    assert (report.requeued, report.waiting, report.quarantined) == ([], [], [])


def test_repeated_passes_do_not_pile_up_duplicates(pending, queued, reconcile):
    first = reconcile(later(301))
    again = reconcile(later(330))

    assert first.requeued == [pending.pk]
    assert again.waiting == [pending.pk]
    assert queued == [pending.pk]


def test_never_requested_listings_come_first(pending, queued, reconcile):
    raw = ListingImageFactory().listing
    Listing.objects.filter(pk=raw.pk).update(scoring_queued_at=None, content_hash="")

    report = reconcile(later(1))

    assert report.requeued == [raw.pk]
    assert report.waiting == [pending.pk]


def test_an_attempt_orphaned_by_an_edit_is_closed_once_stale(
    pending, queued, reconcile
):
    died = ScoringAttempt.objects.create(
        listing=pending, content_hash="0" * 64, started_at=timezone.now()
    )
    routed = ListingImageFactory().listing
    Listing.objects.filter(pk=routed.pk).update(status=Listing.Status.PASSED)
    rescored = ScoringAttempt.objects.create(
        listing=routed, content_hash=routed.content_hash, started_at=timezone.now()
    )

    early = reconcile(later(60))
    report = reconcile(later(301))

    assert early.orphans_closed == []
    assert sorted(report.orphans_closed) == sorted([died.pk, rescored.pk])
    for attempt in (died, rescored):
        attempt.refresh_from_db()
        assert attempt.outcome == "abandoned"
        assert attempt.error == (
            "The worker stopped before it finished (killed or timed out)."
        )
    assert not ScoringAttempt.objects.filter(outcome="running").exists()


def _failed_task(listing, stopped, result="Traceback...\nOperationalError: gone"):
    from uuid import uuid4

    from django_q.models import Task

    return Task.objects.create(
        id=uuid4().hex,
        name=f"score-listing-{listing.pk}",
        func="listings.tasks.score_listing",
        started=stopped,
        stopped=stopped,
        success=False,
        result=result,
    )


def test_a_task_that_failed_before_its_attempt_is_queued_again_at_once(
    pending, queued, reconcile
):
    _failed_task(pending, later(2))

    report = reconcile(later(30))

    assert report.requeued == [pending.pk]
    assert queued == [pending.pk]


def test_an_attempt_whose_task_reported_failure_is_closed_without_waiting(
    pending, queued, reconcile
):
    attempt = ScoringAttempt.objects.create(
        listing=pending, content_hash=pending.content_hash, started_at=later(1)
    )
    _failed_task(pending, later(3))

    report = reconcile(later(30))

    attempt.refresh_from_db()
    assert report.abandoned == [pending.pk]
    assert report.requeued == [pending.pk]
    assert attempt.outcome == "abandoned"
    assert attempt.error == "The scoring task failed: OperationalError: gone"
    assert queued == [pending.pk]


def test_an_old_task_failure_does_not_cut_a_newer_attempt_short(
    pending, queued, reconcile
):
    _failed_task(pending, later(1))
    attempt = ScoringAttempt.objects.create(
        listing=pending, content_hash=pending.content_hash, started_at=later(5)
    )

    report = reconcile(later(30))

    attempt.refresh_from_db()
    assert report.waiting == [pending.pk]
    assert attempt.outcome == "running"
    assert queued == []
