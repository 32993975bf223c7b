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
from listings.services.queueing import after_commit, queue_scoring
from listings.services.scoring import (
    attempt_close,
    attempt_failures,
    listing_quarantine,
)
from listings.services.transitions import listing_locked

Status = Listing.Status
RECONCILER = "clipmatch: reconcile scoring"


@dataclass
class ReconcileReport:
    """What one pass of the reconciler found and did, by listing id."""

    requeued: list[int] = field(default_factory=list)
    abandoned: list[int] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)


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
            running = attempts.filter(outcome=ScoringAttempt.Outcome.RUNNING)
            for attempt in running:
                if attempt.started_at < now - stale_after:
                    attempt_close(
                        attempt,
                        ScoringAttempt.Outcome.ABANDONED,
                        now,
                        "The worker stopped before it finished (killed or timed out).",
                    )
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
