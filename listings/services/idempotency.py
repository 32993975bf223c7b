"""Idempotency keys: how long they are kept, and the purge of older ones."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from clipmatch import conf
from listings.models import IdempotencyKey

PURGER = "clipmatch: purge old idempotency keys"
PURGE_EVERY_MINUTES = 60
PURGE_BATCH = 1000


def idempotency_kept_for() -> timedelta:
    """How long a key and its answer count: CLIPMATCH_API_IDEMPOTENCY_KEY_HOURS."""
    return timedelta(hours=conf.get("IDEMPOTENCY_KEY_HOURS"))


def idempotency_keys_purge(
    *, now: datetime | None = None, batch_size: int = PURGE_BATCH
) -> int:
    """Delete the keys older than their retention, `batch_size` rows per DELETE so
    that no statement holds many row locks or runs long; returns how many went.
    Safe to run twice, or beside requests: an expired key is one that no request
    replays any more."""
    cutoff = (now or timezone.now()) - idempotency_kept_for()
    deleted = 0
    while True:
        batch = list(
            IdempotencyKey.objects.filter(created_at__lt=cutoff)
            .order_by("created_at", "pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not batch:
            return deleted
        deleted += IdempotencyKey.objects.filter(
            pk__in=batch, created_at__lt=cutoff
        ).delete()[0]


def idempotency_schedule_ensure() -> tuple[object, bool]:
    """Create or update the purge's django-q2 schedule; (schedule, created)."""
    from django_q.models import Schedule

    return Schedule.objects.update_or_create(
        name=PURGER,
        defaults={
            "func": "listings.tasks.purge_idempotency_keys",
            "schedule_type": Schedule.MINUTES,
            "minutes": PURGE_EVERY_MINUTES,
            "repeats": -1,
        },
    )
