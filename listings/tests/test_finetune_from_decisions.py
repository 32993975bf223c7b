"""Decisions in, a better model out, activated, and the catalog rescored by a worker."""

import io
import json
import random
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from PIL import Image

from clipmatch.models import ModelVersion
from clipmatch.services import model_version_active
from listings.models import Listing
from listings.services.scoring import listing_score
from listings.services.transitions import listing_transition
from listings.tests.conftest import REVIEW_ALL
from listings.tests.factories import (
    CategoryFactory,
    ListingFactory,
    ListingImageFactory,
    UserFactory,
)
from listings.tests.test_worker import wait_for
from training.tests.test_finetune import COLOURS, colour_catalog

Status = Listing.Status


def colour_png(rgb, seed: int) -> bytes:
    rng = random.Random(seed)
    image = Image.effect_noise((40, 40), 40).convert("RGB")
    side = rng.randint(18, 32)
    x, y = rng.randint(0, 40 - side), rng.randint(0, 40 - side)
    image.paste(rgb, (x, y, x + side, y + side))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def seed_catalog(n_decided: int, n_open: int):
    """Listings of coloured boxes, scored into review; the first n_decided are
    decided by a moderator: approved when the title names the box's colour,
    rejected as a wrong image when it names another."""
    moderator = UserFactory(username="mod", is_staff=True)
    category = CategoryFactory(name="box")
    names = list(COLOURS)
    rng = random.Random(3)
    decided, still_open = [], []
    for n in range(n_decided + n_open):
        shown = names[n % len(names)]
        honest = n % 2 == 0
        said = shown if honest else rng.choice([c for c in names if c != shown])
        listing = ListingFactory(
            title=f"a {said} box",
            description=f"A {said} box, as in the photo.",
            category=category,
        )
        ListingImageFactory(
            listing=listing,
            image=ContentFile(colour_png(COLOURS[shown], n), name=f"{n}.png"),
        )
        assert listing_score(listing_id=listing.pk).status == Status.REVIEW
        if n < n_decided:
            listing_transition(
                listing=listing,
                to_status=Status.APPROVED if honest else Status.REJECTED,
                actor=moderator,
                reason_code="approved" if honest else "wrong_image",
            )
            decided.append(listing)
        else:
            still_open.append(listing)
    return decided, still_open


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_from_decisions_finetune_register_activate_and_the_worker_rescores(
    use_model, tiny_clip_dir, qcluster, tmp_path, queued
):
    # Seeding scores in this process (queued keeps the worker out of it); the
    # worker's part is the rescore that activation queues.
    use_model(tiny_clip_dir, REVIEW_ALL)
    old = model_version_active().version
    decided, still_open = seed_catalog(n_decided=48, n_open=6)
    regression = colour_catalog(tmp_path / "regression", renders=2, seed=9)
    out = StringIO()

    call_command(
        "finetune_clip",
        "--from-decisions",
        "--output",
        str(tmp_path / "tuned"),
        "--regression-csv",
        str(regression),
        "--epochs",
        "4",
        "--lr",
        "2e-3",
        "--batch-size",
        "16",
        "--tolerance",
        "1",
        "--threads",
        "1",
        "--by",
        "mod",
        stdout=out,
        stderr=StringIO(),
        verbosity=1,
    )

    assert "From decisions: 36 listings to train on" in out.getvalue()
    new = ModelVersion.objects.exclude(pk=old.pk).get()
    assert new.source == str((tmp_path / "tuned").resolve())
    assert new.report["data"]["train_pairs"] == 72  # 36 listings x title, description
    assert new.report["data"]["val_pairs"] == 24
    val = new.report["metrics"]["validation"]
    assert val["tuned"]["roc_auc"] > val["base"]["roc_auc"]

    call_command("activate_model", str(new.pk), "--by", "mod", "--yes", stdout=out)

    def rescored():
        return all(
            Listing.objects.get(pk=x.pk).score.model_version_id == new.pk
            for x in still_open
        )

    wait_for(rescored, 90, "the worker to rescore the catalog", qcluster.log_path)
    for listing in still_open:
        listing.refresh_from_db()
        assert listing.score.model_version == new
        assert listing.score.thresholds == new.thresholds
        assert listing.status in {Status.PASSED, Status.REVIEW, Status.HELD}
    for listing in decided:
        before = listing.status
        listing.refresh_from_db()
        assert listing.status == before  # a moderator's decision is never overridden
        assert listing.score.model_version == old


@pytest.mark.django_db
def test_from_decisions_needs_both_labels_in_the_newer_share(
    use_model, tiny_clip_dir, tmp_path, queued
):
    use_model(tiny_clip_dir, REVIEW_ALL)
    seed_catalog(n_decided=4, n_open=0)

    with pytest.raises(CommandError, match="The validation share of the decisions"):
        call_command(
            "finetune_clip",
            "--from-decisions",
            "--output",
            str(tmp_path / "tuned"),
            "--val-share",
            "0.25",
        )

    assert ModelVersion.objects.count() == 1  # only the settings' model


@pytest.mark.django_db
def test_a_bad_csv_names_the_row_and_registers_nothing(
    use_model, tiny_clip_dir, tmp_path
):
    use_model(tiny_clip_dir, REVIEW_ALL)
    good = colour_catalog(tmp_path / "good", renders=2, seed=1)
    bad = tmp_path / "good" / "bad.csv"
    bad.write_text(good.read_text() + "img/missing.png,a red box,1\n")
    rows = len(good.read_text().splitlines())

    with pytest.raises(CommandError) as caught:
        call_command(
            "finetune_clip",
            "--output",
            str(tmp_path / "tuned"),
            "--train-csv",
            str(bad),
            "--val-csv",
            str(good),
            "--regression-csv",
            str(good),
        )

    assert str(caught.value) == (
        f"training data: {bad} row {rows + 1}: image file img/missing.png does "
        "not exist."
    )
    assert list(ModelVersion.objects.values_list("source", flat=True)) == [
        str(tiny_clip_dir)  # the settings' model, resolved as the default --base
    ]
    assert not (tmp_path / "tuned").exists()


@pytest.mark.django_db
def test_a_refused_fine_tune_is_not_registered_and_the_command_says_why(
    use_model, tiny_clip_dir, tmp_path
):
    use_model(tiny_clip_dir, REVIEW_ALL)
    train = colour_catalog(tmp_path / "train", renders=6, seed=1)
    val = colour_catalog(tmp_path / "val", renders=2, seed=2)
    flipped = colour_catalog(tmp_path / "flipped", renders=2, seed=3, flip=True)

    with pytest.raises(CommandError) as caught:
        call_command(
            "finetune_clip",
            "--output",
            str(tmp_path / "tuned"),
            "--train-csv",
            str(train),
            "--val-csv",
            str(val),
            "--regression-csv",
            str(flipped),
            "--lr",
            "2e-3",
            "--batch-size",
            "16",
            "--threads",
            "1",
            stdout=StringIO(),
            stderr=StringIO(),
            verbosity=0,
        )

    report = json.loads((tmp_path / "tuned" / "finetune_report.json").read_text())
    assert report["accepted"] is False
    assert str(caught.value) == (
        "The fine-tuned model is worse than its base and is not registered: "
        + " ".join(report["refusals"])
    )
    assert report["refusals"][0].startswith("regression ROC-AUC fell from")
    assert ModelVersion.objects.filter(source__contains="tuned").count() == 0
