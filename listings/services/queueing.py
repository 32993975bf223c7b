"""The one door to the task queue: every task the listings services queue goes
through `queue_task`, so tests replace that one function (conftest.py `queued`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)

SCORE_TASK = "listings.tasks.score_listing"
# The reconciler finds django-q2's record of a failed scoring run by this name.
SCORE_TASK_PREFIX = "score-listing-"
SHADOW_SCORE_TASK = "listings.tasks.score_shadow"
RESCORE_BATCH_TASK = "listings.tasks.rescore_batch"
SHADOW_BATCH_TASK = "listings.tasks.shadow_batch"


def queue_task(path: str, *args, task_name: str, cluster: str | None = None) -> None:
    """Hand the task at `path` (ids only, never instances) to django-q2 now, on the
    scoring cluster's queue or on `cluster`'s; callers call this from
    `after_commit`."""
    # Imported here: django-q2 reads its settings once, when it is imported.
    from django_q.tasks import async_task

    async_task(path, *args, task_name=task_name, cluster=cluster)


def after_commit(func: Callable[..., object], *args) -> None:
    """Call ``func(*args)`` once the current transaction commits, and never let it
    fail the request: the write it follows has committed, so the caller gets its
    normal answer, and the reconciler or the webhook dispatcher queues again what
    a broker outage lost (the database says what is still to do).

    Not ``on_commit(partial(...), robust=True)``: Django's robust handler logs
    ``func.__qualname__``, which a partial lacks, and that AttributeError escaped.
    """
    name = getattr(func, "__qualname__", repr(func))

    def run() -> None:
        try:
            func(*args)
        except Exception:
            logger.exception("After commit, %s%r failed; left for a retry.", name, args)

    transaction.on_commit(run)


def queue_scoring(listing_id: int) -> None:
    try:
        queue_task(SCORE_TASK, listing_id, task_name=f"{SCORE_TASK_PREFIX}{listing_id}")
    except Exception:
        # Not queued after all: the reconciler's next pass queues it again, rather
        # than first giving the queue SCORING_STALE_AFTER to pick it up.
        from listings.models import Listing

        Listing.objects.filter(pk=listing_id).update(scoring_queued_at=None)
        raise


def queue_shadow_scoring(listing_id: int) -> None:
    queue_task(SHADOW_SCORE_TASK, listing_id, task_name=f"shadow-{listing_id}")


def queue_batches(
    task: str, version_id: int, ids: list[int], batch_size: int, name: str
) -> int:
    """Queue ``task(version_id, batch)`` for each batch of ids; how many batches."""
    batches = 0
    for start in range(0, len(ids), batch_size):
        queue_task(
            task,
            version_id,
            ids[start : start + batch_size],
            task_name=f"{name}-{start // batch_size}",
        )
        batches += 1
    return batches
