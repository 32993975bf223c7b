"""clip_benchmark: its workload, its arithmetic, and a whole run on the bundled model.

No figure is asserted: a benchmark measures, the tests check what it reports."""

import io
import json
import pstats
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from listings.benchmark.run import ARMS, batches_of, e2e_split
from listings.benchmark.workload import photo_render, workload_build
from listings.models import Listing

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "clipmatch" / "bundled" / "clipmatch-mini"


def test_photos_are_photo_like_and_the_same_for_a_seed():
    jpeg = photo_render(5, (1600, 1200), "JPEG")
    png = photo_render(5, (800, 800), "PNG")

    assert photo_render(5, (1600, 1200), "JPEG") == jpeg
    assert photo_render(6, (1600, 1200), "JPEG") != jpeg
    with Image.open(io.BytesIO(jpeg)) as image:
        assert (image.format, image.size) == ("JPEG", (1600, 1200))
        # Not a flat colour: many distinct colours, as in a photo.
        assert len(image.convert("RGB").getcolors(1 << 24)) > 100_000
    with Image.open(io.BytesIO(png)) as image:
        assert (image.format, image.size) == ("PNG", (800, 800))
    # A flat 1600x1200 JPEG is about 20 KB; a photo's is hundreds.
    assert len(jpeg) > 200_000


def test_descriptions_grow_to_their_drawn_number_of_windows():
    def windows(text: str) -> int:
        return 1 + len(text.split()) // 12

    first = workload_build(count=4, seed=3, windows=windows)
    again = workload_build(count=4, seed=3, windows=windows)

    assert [(x.title, x.description, x.category) for x in first] == [
        (x.title, x.description, x.category) for x in again
    ]
    assert [[p.data for p in x.photos] for x in first] == [
        [p.data for p in x.photos] for x in again
    ]
    assert all(windows(x.description) >= x.windows_drawn for x in first)
    assert {x.windows_drawn for x in first} <= {1, 2, 3, 4}
    assert all(1 <= len(x.photos) <= 4 for x in first)
    assert {p.kind for x in first for p in x.photos} <= {
        "JPEG 1600x1200",
        "JPEG 3000x2000",
        "PNG 800x800",
    }


def test_the_split_charges_the_rest_of_worker_time_to_the_queue():
    profile = {
        "listings": 4,
        "seconds": 2.0,
        "buckets": {
            "decode": 0.4,
            "preprocess": 0.2,
            "forward": 1.2,
            "database_and_other": 0.2,
        },
    }

    split = e2e_split(profile, e2e_rate=2.0, workers=2)

    # 2 workers at 2 listings/s: each listing holds a worker for 1000 ms, of which
    # the service took 500.
    assert split["worker_ms_per_listing"] == 1000.0
    assert split["ms_per_listing"] == {
        "decode": 100.0,
        "preprocess": 50.0,
        "forward": 300.0,
        "database_and_other": 50.0,
        "queue_and_idle": 500.0,
    }
    assert split["shares"]["queue_and_idle"] == 0.5


@pytest.mark.django_db
def test_the_batches_of_a_round_come_from_the_attempts(settings):
    from datetime import datetime, timedelta
    from datetime import timezone as tz

    from listings.models import ScoringAttempt
    from listings.tests.factories import ListingFactory

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 2}
    start = datetime(2026, 12, 1, 12, tzinfo=tz.utc)
    at = lambda s: start + timedelta(seconds=s)  # noqa: E731
    listings = ListingFactory.create_batch(3)
    for listing, worker, began, ended in [
        (listings[0], "host:1", at(1), at(3)),
        (listings[1], "host:1", at(1), at(4)),
        (listings[2], "host:2", at(2), at(5)),
    ]:
        ScoringAttempt.objects.create(
            listing=listing,
            content_hash="x",
            worker=worker,
            started_at=began,
            finished_at=ended,
        )

    batches = batches_of([x.pk for x in listings], start.timestamp(), 5.0)

    # host:1 scored two from 1 s to 4 s, host:2 one from 2 s to 5 s: 6 of the
    # round's 10 worker-seconds inside a batch.
    assert batches == {
        "count": 2,
        "spans": [[0, 2, 1.0, 4.0], [1, 1, 2.0, 5.0]],
        "busy_share": 0.6,
    }


def test_an_unknown_arm_is_refused():
    with pytest.raises(CommandError, match="--arms: unknown fast_arm; choose from"):
        call_command("clip_benchmark", "--arms", "end_to_end,fast_arm")


def test_a_count_below_one_is_refused():
    with pytest.raises(CommandError, match="--listings must be at least 1."):
        call_command("clip_benchmark", "--listings", "0")


@pytest.mark.slow
def test_a_run_reports_every_arm_and_leaves_nothing_behind(worker_env, tmp_path):
    profile = tmp_path / "scoring.prof"
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "clip_benchmark",
            f"--model={BUNDLED}",
            "--listings=2",
            "--rounds=2",
            "--json",
            f"--profile={profile}",
        ],
        cwd=ROOT,
        env=worker_env,
        capture_output=True,
        text=True,
        timeout=900,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    arms = report["arms"]
    assert list(arms) == list(ARMS)
    for figures in arms.values():
        assert len(figures["seconds"]) == 2
        rates = [round(2 / s, 3) for s in figures["seconds"]]
        assert figures["listings_per_s"] == rates
        median = statistics.median(figures["seconds"])
        assert figures["median_listings_per_s"] == round(2 / median, 3)
    rate = {arm: figures["median_listings_per_s"] for arm, figures in arms.items()}
    assert arms["bare_fp32"]["vs_bare_fp32"] == 1.0
    assert arms["seed_loop"]["vs_bare_fp32"] == round(
        rate["seed_loop"] / rate["bare_fp32"], 2
    )
    assert report["ratios"] == {
        "e2e_vs_bare_same_precision": round(
            rate["end_to_end"] / rate["bare_precision"], 2
        ),
        "e2e_vs_seed_loop": round(rate["end_to_end"] / rate["seed_loop"], 2),
        "e2e_vs_bare_fp32": round(rate["end_to_end"] / rate["bare_fp32"], 2),
    }
    assert arms["end_to_end"]["failed"] == 0
    assert arms["end_to_end"]["peak_memory_mb"]["max"] > 0
    assert report["workload"]["listings"] == 2
    assert report["settings"]["debug"] is False  # measured as production runs
    assert set(report["e2e_split"]["ms_per_listing"]) == {
        "decode",
        "preprocess",
        "forward",
        "photo_signals",
        "database_and_other",
        "queue_and_idle",
    }
    assert report["e2e_split"]["ms_per_listing"]["forward"] > 0
    assert report["e2e_split"]["ms_per_listing"]["photo_signals"] > 0
    # Each round says how its listings were batched: all of them, once.
    for detail in arms["end_to_end"]["rounds_detail"]:
        assert sum(size for _, size, _, _ in detail["batches"]["spans"]) == 2
        assert 0 < detail["batches"]["busy_share"] <= 1
    # --profile keeps the in-process scoring run's statistics for pstats.
    scored = [
        calls
        for (filename, _, name), (calls, *_) in pstats.Stats(str(profile)).stats.items()
        if filename.endswith("listings/services/scoring.py") and name == "listing_score"
    ]
    assert scored == [2]
    # Its listings lived in a database of its own, not the configured one.
    assert not Listing.objects.exists()
