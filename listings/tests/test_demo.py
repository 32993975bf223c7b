"""The demo: seeding, the summary's arithmetic, and a whole run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone

from clipmatch.models import ModelVersion
from listings.demo import DemoListing, demo_seed, demo_summary
from listings.models import Listing, ListingScore

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_demo_seed_plants_each_kind_of_mismatch(queued):
    seeded = demo_seed(count=40, mismatch_rate=0.5, seed=3, size=64)

    kinds = {s.kind for s in seeded}
    listings = Listing.objects.in_bulk([s.listing_id for s in seeded])
    assert len(seeded) == 40
    assert kinds == {"honest", "wrong_category", "wrong_colour", "something_else"}
    for item in seeded:
        images = listings[item.listing_id].images.count()
        assert images == 2 if item.kind == "something_else" else images in (1, 2)


@pytest.mark.django_db
def test_demo_summary_counts_catches_and_false_flags(queued):
    seeded = demo_seed(count=4, mismatch_rate=0.0, seed=1, size=32)
    version = ModelVersion.objects.create(name="m", source="m", fingerprint="f" * 64)
    plan = [
        ("honest", "passed", "pass", False),
        ("honest", "review", "pass", True),  # an audit sample is not a false flag
        ("wrong_colour", "held", "hold", False),
        ("wrong_category", "passed", "pass", False),  # missed
    ]
    items = []
    for item, (kind, status, verdict, audit) in zip(seeded, plan, strict=True):
        score = ListingScore.objects.create(
            listing_id=item.listing_id,
            model_version=version,
            content_hash="x",
            verdict=verdict,
            computed_at=timezone.now(),
            audit_sample=audit,
        )
        Listing.objects.filter(pk=item.listing_id).update(status=status, score=score)
        items.append(DemoListing(item.listing_id, kind))

    summary = demo_summary(items)

    assert summary == {
        "listings": 4,
        "passed": 2,
        "review": 1,
        "held": 1,
        "failed": 0,
        "pending": 0,
        "audit_samples": 1,
        "planted_mismatches": 2,
        "caught": 1,
        "honest_flagged": 0,
        "planted_reused": 0,
        "reused_caught": 0,
        "planted_unusable": 0,
        "unusable_caught": 0,
    }


@pytest.mark.slow
def test_the_demo_scores_through_a_worker_and_catches_the_plants(worker_env, settings):
    result = subprocess.run(
        [sys.executable, "manage.py", "demo", "--json"],
        cwd=ROOT,
        env=worker_env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {
        "listings",
        "passed",
        "review",
        "held",
        "failed",
        "planted_mismatches",
        "caught",
        "honest_flagged",
    } <= set(summary)
    honest = summary["listings"] - summary["planted_mismatches"]
    assert summary["pending"] == 0
    assert summary["failed"] == 0
    assert (
        summary["passed"] + summary["review"] + summary["held"] == summary["listings"]
    )
    assert summary["caught"] >= 0.9 * summary["planted_mismatches"]
    assert summary["honest_flagged"] <= 0.1 * honest
