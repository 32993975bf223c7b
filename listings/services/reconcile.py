"""The reconciler: the database says what still needs scoring, and a scheduled
pass re-queues what the task queue lost, abandoned or must retry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from clipmatch import conf
from listings.models import Listing, ScoringAttempt
from listings.services.queueing import (
    SCORE_TASK,
    SCORE_TASK_PREFIX,
    after_commit,
    queue_scoring,
)
from listings.services.scoring import (
    attempt_close,
    attempt_failures,
    listing_quarantine,
)
from listings.services.transitions import listing_locked

Status = Listing.Status
Outcome = ScoringAttempt.Outcome
RECONCILER = "clipmatch: reconcile scoring"
DIED = "The worker stopped before it finished (killed or timed out)."


@dataclass
class ReconcileReport:
    """What one pass of the reconciler found and did, by listing id."""

    requeued: list[int] = field(default_factory=list)
    abandoned: list[int] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    # Attempts (by attempt id) left running for content nobody waits for any more:
    # the listing was edited, rescored or routed after its worker died.
    orphans_closed: list[int] = field(default_factory=list)


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
    report.orphans_closed = _close_orphaned_attempts(now - stale_after, now)
    failed_at = _failed_scoring_tasks(since=now - stale_after)
    pending = Listing.objects.filter(status=Status.PENDING).order_by(
        F("scoring_queued_at").asc(nulls_first=True), "pk"
    )
    for listing_id in pending.values_list("pk", flat=True)[:limit]:
        with transaction.atomic():
            listing = listing_locked(listing_id)
            if listing is None or listing.status != Status.PENDING:
                continue
            attempts = ScoringAttempt.objects.filter(
                listing=listing, content_hash=listing.content_hash
            )
            running = attempts.filter(outcome=Outcome.RUNNING)
            task_failed = failed_at.get(listing.pk)
            for attempt in running:
                if attempt.started_at < now - stale_after:
                    attempt_close(attempt, Outcome.ABANDONED, now, DIED)
                    report.abandoned.append(listing.pk)
                elif task_failed and task_failed[0] >= attempt.started_at:
                    # Its task has ended, in failure (django-q2 recorded it): the
                    # attempt will never finish, so waiting for it to go stale
                    # only delays the retry.
                    attempt_close(attempt, Outcome.ABANDONED, now, task_failed[1])
                    report.abandoned.append(listing.pk)
            if running.filter(started_at__gte=now - stale_after).exists():
                report.waiting.append(listing.pk)
                continue
            failures = attempt_failures(listing, listing.content_hash)
            if failures >= max_attempts:
                last = attempts.exclude(error="").first()
                listing_quarantine(
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
                and not (task_failed and task_failed[0] >= queued)
            ):
                # Queued since the last attempt and not picked up yet: give the queue
                # its time rather than piling up duplicates.
                report.waiting.append(listing.pk)
                continue
            listing.scoring_queued_at = now
            listing.save(update_fields=["scoring_queued_at"])
            after_commit(queue_scoring, listing.pk)
            report.requeued.append(listing.pk)
    return report


def _close_orphaned_attempts(stale: datetime, now: datetime) -> list[int]:
    """Close attempts left running for good: started before `stale`, for a listing
    that no longer waits for that content (edited, rescored or routed since its
    worker died), which the pass over pending listings never looks at."""
    orphans = ScoringAttempt.objects.filter(
        outcome=Outcome.RUNNING, started_at__lt=stale
    ).exclude(listing__status=Status.PENDING, content_hash=F("listing__content_hash"))
    ids = list(orphans.values_list("pk", flat=True))
    # A conditional UPDATE: an attempt that finished meanwhile is left as it is.
    ScoringAttempt.objects.filter(pk__in=ids, outcome=Outcome.RUNNING).update(
        outcome=Outcome.ABANDONED, finished_at=now, error=DIED
    )
    return ids


def _failed_scoring_tasks(*, since: datetime) -> dict[int, tuple[datetime, str]]:
    """When each listing's scoring task last failed since `since`, and why, as
    django-q2 recorded it (its worker caught the error and said so at once)."""
    from django_q.models import Task

    failed: dict[int, tuple[datetime, str]] = {}
    rows = Task.objects.filter(
        func=SCORE_TASK, success=False, stopped__gte=since
    ).values_list("name", "stopped", "result")
    for name, stopped, result in rows:
        suffix = name.removeprefix(SCORE_TASK_PREFIX)
        if name == suffix or not suffix.isdigit():
            continue
        lines = str(result or "").strip().splitlines()
        why = f"The scoring task failed: {lines[-1] if lines else 'no reason given'}"
        listing_id = int(suffix)
        if listing_id not in failed or failed[listing_id][0] < stopped:
            failed[listing_id] = (stopped, why[:1000])
    return _with_batch_mates(failed)


def _with_batch_mates(
    failed: dict[int, tuple[datetime, str]],
) -> dict[int, tuple[datetime, str]]:
    """A failed task's batch-mates failed with it: their attempts share its
    attempt's worker and start (scoring.listing_score claims them together)."""
    if not failed:
        return failed
    leaders = ScoringAttempt.objects.filter(
        listing_id__in=list(failed), outcome=Outcome.RUNNING
    ).values_list("listing_id", "worker", "started_at")
    mates = dict(failed)
    for listing_id, worker, started_at in leaders:
        if not worker or failed[listing_id][0] < started_at:
            continue
        batch = (
            ScoringAttempt.objects.filter(
                outcome=Outcome.RUNNING, worker=worker, started_at=started_at
            )
            .exclude(listing_id=listing_id)
            .values_list("listing_id", flat=True)
        )
        for mate in batch:
            mates.setdefault(mate, failed[listing_id])
    return mates


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
