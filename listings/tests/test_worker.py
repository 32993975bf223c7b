"""Scoring through a real django-q2 cluster, a killed worker, and the fork rule."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models import Count
from django.utils import timezone

from conftest import wait_for
from listings.models import Listing, ListingScore, ScoringAttempt
from listings.services.reconcile import scoring_reconcile
from listings.tests.conftest import PASS_ALL
from listings.tests.factories import ListingFactory, ListingImageFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def model(use_model, tiny_clip_dir):
    use_model(tiny_clip_dir, PASS_ALL)


def test_an_orm_save_is_scored_by_a_running_worker_and_not_again(
    model, qcluster, monkeypatch
):
    listing = ListingFactory()
    ListingImageFactory(listing=listing)

    def routed():
        listing.refresh_from_db()
        return listing.status != Listing.Status.PENDING

    started = time.monotonic()
    wait_for(routed, 60, "the worker to score the listing", qcluster.log_path)
    elapsed = time.monotonic() - started

    assert listing.status == Listing.Status.PASSED
    assert listing.score.model_version.name == "tiny-clip-0"
    assert listing.score.reasons == ["The image matches the title and description."]
    assert elapsed < 60
    queued = []
    monkeypatch.setattr(
        "listings.services.queueing.queue_task",
        lambda path, *args, task_name: queued.append((path, *args)),
    )
    listing.save()
    time.sleep(1)
    assert queued == []
    assert ScoringAttempt.objects.filter(listing=listing).count() == 1
    assert ListingScore.objects.filter(listing=listing).count() == 1


def test_a_worker_killed_mid_task_is_recovered_and_scored_exactly_once(model, qcluster):
    listing = ListingFactory()
    ListingImageFactory(listing=listing)

    attempt = wait_for(
        lambda: ScoringAttempt.objects.filter(listing=listing).first(),
        60,
        "the worker to start the task",
        qcluster.log_path,
    )
    os.kill(_worker_pid(attempt), signal.SIGKILL)
    attempt.refresh_from_db()
    assert attempt.outcome == "running", "the task finished before it could be killed"

    report = scoring_reconcile(now=timezone.now() + timedelta(seconds=301))
    assert report.abandoned == [listing.pk]
    assert report.requeued == [listing.pk]

    def routed():
        listing.refresh_from_db()
        return listing.status != Listing.Status.PENDING

    wait_for(routed, 60, "the requeued task to score the listing", qcluster.log_path)
    outcomes = sorted(
        ScoringAttempt.objects.filter(listing=listing).values_list("outcome", flat=True)
    )
    assert listing.status == Listing.Status.PASSED
    assert outcomes == ["abandoned", "scored"]
    assert ListingScore.objects.filter(listing=listing).count() == 1
    assert listing.decisions.filter(to_status=Listing.Status.PASSED).count() == 1


def test_a_worker_killed_before_an_edit_leaves_no_attempt_running(model, qcluster):
    listing = ListingFactory()
    ListingImageFactory(listing=listing)
    attempt = wait_for(
        lambda: ScoringAttempt.objects.filter(listing=listing).first(),
        60,
        "the worker to start the task",
        qcluster.log_path,
    )
    os.kill(_worker_pid(attempt), signal.SIGKILL)
    ListingImageFactory(listing=listing)  # an edit: new content, a new task

    def routed():
        listing.refresh_from_db()
        return listing.status != Listing.Status.PENDING

    wait_for(routed, 60, "the edited listing to be scored", qcluster.log_path)
    report = scoring_reconcile(now=timezone.now() + timedelta(seconds=301))

    attempt.refresh_from_db()
    assert report.orphans_closed == [attempt.pk]
    assert attempt.outcome == "abandoned"
    assert not ScoringAttempt.objects.filter(outcome="running").exists()


def _worker_pid(attempt: ScoringAttempt) -> int:
    return int(attempt.worker.rsplit(":", 1)[1])


def _in_cluster(pid: int, cluster) -> bool:
    """Whether `pid` is alive and one of this cluster's processes: never kill
    anything else."""
    try:
        return os.getpgid(pid) == cluster.pid
    except ProcessLookupError:
        return False


def _a_busy_worker(cluster, timeout: float = 120) -> int | None:
    """The pid of one of the cluster's workers that is scoring now; None if none
    was within `timeout` (what is left pending may be backing off after a kill)."""
    from django.db import close_old_connections

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        close_old_connections()
        running = ScoringAttempt.objects.filter(outcome=ScoringAttempt.Outcome.RUNNING)
        for attempt in running.order_by("-started_at")[:20]:
            if _in_cluster(_worker_pid(attempt), cluster):
                return _worker_pid(attempt)
        time.sleep(0.02)
    return None


CHAOS_LISTINGS = 80
# What the chaos test does, in order, while the cluster scores: SIGKILL one busy
# worker, SIGKILL the whole cluster (then start it again, but for the last), or
# edit a few listings. Each kill costs a worker start (torch imported again), which
# sets the test's length: 4 worker kills and 2 cluster kills.
CHAOS_STEPS = ["worker", "edit", "worker", "cluster", "worker", "edit", "worker"]
CHAOS_STEPS += ["edit", "cluster"]


def test_chaos_kills_and_edits_lose_nothing_and_score_each_content_once(
    model, worker_env, tmp_path
):
    import random

    from listings.workers import qcluster_start, qcluster_stop

    rng = random.Random(12)
    env = {**worker_env, "Q_WORKERS": "3"}
    log_path = tmp_path / "qcluster.log"
    log = log_path.open("w")

    def start():
        cluster = qcluster_start(env=env, log=log)
        cluster.log_path = log_path
        return cluster

    ids = []
    for n in range(CHAOS_LISTINGS):
        listing = ListingFactory(title=f"red striped sneaker {n}")
        ListingImageFactory(listing=listing)
        ids.append(listing.pk)
    pending = Listing.objects.filter(status=Listing.Status.PENDING)
    cluster = start()
    done = {"worker": 0, "cluster": 0, "edit": 0}
    try:
        for number, step in enumerate(CHAOS_STEPS, 1):
            # A few more listings routed since the last step: the kills and edits
            # are spread over the scoring, not all at its start.
            # Up to 60 s: what is left may be backing off after a kill, which only
            # the reconciler below takes up again.
            left = pending.count()
            deadline = time.monotonic() + 60
            while left and pending.count() > left - 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            # A cluster is killed busy if it gets busy within 30 s, and killed
            # anyway; a worker kill needs a busy worker, else the step edits.
            busy = _a_busy_worker(cluster, 30) if pending.exists() else None
            if step == "worker" and busy is None:
                step = "edit"  # nothing being scored: make work
            if step == "worker":
                os.kill(busy, signal.SIGKILL)
            elif step == "cluster":
                os.killpg(cluster.pid, signal.SIGKILL)
                cluster.wait()
                cluster = start() if number < len(CHAOS_STEPS) else None
            else:
                for listing_id in rng.sample(ids, 5):
                    listing = Listing.objects.get(pk=listing_id)
                    listing.title = f"{listing.title} (edited)"
                    listing.save()
            done[step] += 1
        # Recover as production does: the reconciler re-queues what the kills lost.
        # It runs while no cluster does (the last step killed it; later ones are
        # stopped with SIGTERM, which lets running tasks finish), so that every
        # attempt still marked running is one whose worker died, and a clock past
        # the staleness limit stands in for the wait.
        if cluster is not None:
            qcluster_stop(cluster, grace=30)
            cluster = None
        reconciled = []
        for _ in range(4):
            later = timezone.now() + timedelta(seconds=301)
            reconciled.append(scoring_reconcile(now=later))
            if not pending.exists():
                break
            cluster = start()
            wait_for(
                lambda: not pending.exists(), 180, "the re-queued listings", log_path
            )
            qcluster_stop(cluster, grace=30)
            cluster = None
    finally:
        if cluster is not None:
            qcluster_stop(cluster, grace=5)
        log.close()

    listings = list(Listing.objects.filter(pk__in=ids))
    scored = ScoringAttempt.objects.filter(outcome=ScoringAttempt.Outcome.SCORED)
    per_content = {
        (listing.pk, listing.content_hash): (
            ListingScore.objects.filter(
                listing=listing, content_hash=listing.content_hash
            ).count(),
            scored.filter(listing=listing, content_hash=listing.content_hash).count(),
        )
        for listing in listings
    }
    print(
        f"chaos: {done}, abandoned "
        f"{sum(len(r.abandoned) + len(r.orphans_closed) for r in reconciled)}, "
        f"re-queued {sum(len(r.requeued) for r in reconciled)} in "
        f"{len(reconciled)} reconciler passes; statuses "
        f"{sorted({listing.status for listing in listings})}"
    )
    # A step finding nothing left to score edits instead, so kills may be fewer.
    assert done["worker"] >= 2 and done["cluster"] == 2 and done["edit"] >= 3
    assert [x.pk for x in listings if x.status == Listing.Status.PENDING] == []
    assert {counts for counts in per_content.values()} == {(1, 1)}
    assert not ScoringAttempt.objects.filter(
        outcome=ScoringAttempt.Outcome.RUNNING
    ).exists()
    # No content was scored twice, whichever content it was.
    twice = (
        scored.values("listing", "content_hash").annotate(n=Count("id")).filter(n__gt=1)
    )
    assert list(twice) == []


FORK_SCRIPT = """
import multiprocessing, os, sys
import django
django.setup()
import listings.tasks, clipmatch.services  # noqa
import listings.services.scoring, listings.services.rescoring  # noqa
import listings.services.review, listings.services.lifecycle  # noqa
import clipmatch.inference.engine, clipmatch.runtime  # noqa
from django.core.management import get_commands
assert "torch" not in sys.modules, "importing the project loaded torch"

def child(listing_id, queue):
    from django.db import connections
    connections.close_all()
    from listings.services.scoring import listing_score
    queue.put(listing_score(listing_id=listing_id).outcome)

ctx = multiprocessing.get_context("fork")
queue = ctx.Queue()
process = ctx.Process(target=child, args=(int(sys.argv[1]), queue))
process.start()
process.join(120)
if process.is_alive():
    process.kill()
    print("HUNG")
    sys.exit(3)
print("OUTCOME", queue.get(timeout=5))
print("PARENT_TORCH", "torch" in sys.modules)
"""


def test_scoring_in_a_forked_child_finishes_and_the_parent_never_loads_torch(
    model, worker_env, queued
):
    from listings.services.scoring import listing_request_scoring

    listing = ListingImageFactory().listing
    listing_request_scoring(listing_id=listing.pk)

    result = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, str(listing.pk)],
        cwd=ROOT,
        env=worker_env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "OUTCOME scored" in result.stdout
    assert "PARENT_TORCH False" in result.stdout
    listing.refresh_from_db()
    assert listing.status == Listing.Status.PASSED


def listing_after_log_line(qcluster, line: str) -> Listing:
    """A listing with an image, created once the cluster's log shows `line`."""
    wait_for(
        lambda: line in qcluster.log_path.read_text(),
        60,
        f"the worker to log {line!r}",
        qcluster.log_path,
    )
    listing = ListingFactory()
    ListingImageFactory(listing=listing)
    return listing


@pytest.fixture(params=["fp32", "auto"])
def worker_precision(request, worker_env):
    """The workers at the suite's precision and at the default setting, "auto":
    a preload at "auto" and a task at the precision its version recorded once
    loaded the model twice."""
    worker_env["CLIPMATCH_PRECISION"] = request.param


def test_a_worker_loads_the_model_once_before_it_takes_its_first_task(
    model, worker_precision, qcluster
):
    listing = listing_after_log_line(qcluster, "Model ready in")

    def routed():
        listing.refresh_from_db()
        return listing.status != Listing.Status.PENDING

    wait_for(routed, 60, "the worker to score the listing", qcluster.log_path)

    log = qcluster.log_path.read_text()
    # The load happened before the task was taken: its run time never counts it.
    assert log.index("Model ready in") < log.index("'listings.tasks.score_listing'")
    assert "tiny-clip-0@" in log[log.index("Model ready in") :].splitlines()[0]
    # The task was served by the preloaded engine, not a second load.
    assert log.count("Loading CLIP model") == 1
    assert listing.status == Listing.Status.PASSED


@pytest.fixture
def broken_model(use_model, tiny_clip_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "clip"}')
    (broken / "clipmatch.json").write_text(
        (tiny_clip_dir / "clipmatch.json").read_text()
    )
    use_model(broken, PASS_ALL)


def test_a_model_that_fails_to_load_at_start_fails_tasks_not_the_worker(
    broken_model, qcluster
):
    listing = listing_after_log_line(qcluster, "Preloading the model in")

    def failed_once():
        return ScoringAttempt.objects.filter(listing=listing).exclude(error="").first()

    attempt = wait_for(failed_once, 60, "the task to fail", qcluster.log_path)

    listing.refresh_from_db()
    assert listing.status == Listing.Status.PENDING  # retried, never passed
    assert "Could not load model" in attempt.error
    assert qcluster.poll() is None  # the cluster, its worker included, lives on
