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
