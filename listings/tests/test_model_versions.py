"""Registering and activating model versions; a missing activated model fails loudly."""

import json
import shutil
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from clipmatch.inference.sources import ModelLoadError
from clipmatch.models import ModelAuditEntry, ModelVersion
from clipmatch.services import (
    ModelVersionError,
    model_version_activate,
    model_version_active,
    model_version_register,
)
from conftest import build_tiny_clip
from listings.models import Listing
from listings.services.scoring import listing_request_scoring, listing_score
from listings.tests.conftest import PASS_ALL
from listings.tests.factories import ListingImageFactory, UserFactory

pytestmark = pytest.mark.django_db
ACCEPTED = {"accepted": True, "refusals": [], "metrics": {"validation": {}}}


@pytest.fixture
def staff():
    return UserFactory(username="lead", is_staff=True)


@pytest.fixture
def second_model(tmp_path):
    """Another real tiny checkpoint, registered as a version."""
    path = build_tiny_clip(tmp_path / "tiny-b", seed=1)
    meta = json.loads((path / "clipmatch.json").read_text())
    meta["thresholds"]["category_top_k"] = 0
    (path / "clipmatch.json").write_text(json.dumps(meta))
    version, _ = model_version_register(path=str(path), report=ACCEPTED)
    return version


def test_registering_records_path_thresholds_and_an_audit_entry(second_model):
    assert second_model.name == "tiny-clip-1"
    assert second_model.thresholds["title"] == {"pass": 0.5, "hold": -0.5}
    assert second_model.report == ACCEPTED
    assert second_model.is_active is False
    entry = ModelAuditEntry.objects.get()
    assert entry.action == "registered"
    assert entry.model_version == second_model


def test_a_refused_run_is_not_registered(tmp_path):
    path = build_tiny_clip(tmp_path / "tiny-c", seed=2)
    report = {"accepted": False, "refusals": ["regression ROC-AUC fell."]}

    with pytest.raises(ModelVersionError, match="Not registered: regression ROC-AUC"):
        model_version_register(path=str(path), report=report)

    assert ModelVersion.objects.count() == 0


def test_activating_makes_the_version_score_records_who_and_queues_a_rescore(
    tiny_clip_dir,
    use_model,
    second_model,
    staff,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    use_model(tiny_clip_dir, PASS_ALL)
    settings_version = model_version_active().version
    queued = []
    monkeypatch.setattr("listings.signals.queue_catalog_rescore", queued.append)

    with django_capture_on_commit_callbacks(execute=True):
        entry = model_version_activate(version=second_model, actor=staff)

    second_model.refresh_from_db()
    assert second_model.is_active is True
    assert second_model.activated_by == staff
    assert second_model.activated_at is not None
    assert entry.action == "activated"
    assert entry.actor == staff
    assert entry.detail == {"previous": "settings"}
    assert queued == [second_model.pk]
    active = model_version_active()
    assert active.version == second_model
    assert active.version != settings_version
    assert active.thresholds.title_pass == 0.5


def test_activating_another_version_deactivates_the_first(
    tiny_clip_dir, use_model, second_model, staff, tmp_path
):
    use_model(tiny_clip_dir, PASS_ALL)
    first = model_version_active().version
    model_version_activate(version=first, actor=staff)

    model_version_activate(version=second_model, actor=staff)

    assert list(ModelVersion.objects.filter(is_active=True)) == [second_model]
    assert ModelAuditEntry.objects.filter(action="activated").count() == 2


def test_the_database_allows_one_active_version(second_model, tiny_clip_dir):
    other = ModelVersion.objects.create(
        name="x", source=str(tiny_clip_dir), fingerprint="f" * 64, is_active=True
    )
    second_model.is_active = True

    with pytest.raises(IntegrityError), transaction.atomic():
        second_model.save()

    assert list(ModelVersion.objects.filter(is_active=True)) == [other]


def test_only_staff_activate(second_model):
    with pytest.raises(ModelVersionError, match="Only a staff user"):
        model_version_activate(version=second_model, actor=UserFactory())

    assert not ModelVersion.objects.filter(is_active=True).exists()


def test_a_version_whose_files_are_gone_cannot_be_activated(second_model, staff):
    shutil.rmtree(second_model.source)

    with pytest.raises(ModelLoadError, match="are missing"):
        model_version_activate(version=second_model, actor=staff)

    assert not ModelVersion.objects.filter(is_active=True).exists()


def test_an_activated_version_whose_files_vanish_fails_scoring_and_never_falls_back(
    tiny_clip_dir, use_model, second_model, staff, queued
):
    use_model(tiny_clip_dir, PASS_ALL)
    model_version_activate(version=second_model, actor=staff)
    shutil.rmtree(second_model.source)
    listing = ListingImageFactory().listing
    listing_request_scoring(listing_id=listing.pk)

    outcome = listing_score(listing_id=listing.pk)

    assert outcome.outcome == "retry"
    assert outcome.detail.startswith(
        f"ModelLoadError: The files of model version {second_model} are missing: "
        f"Model directory {second_model.source!r} does not exist."
    )
    listing.refresh_from_db()
    assert listing.status == Listing.Status.PENDING
    assert listing.scores.count() == 0


def test_activate_model_command_names_an_unknown_version(staff):
    with pytest.raises(CommandError, match="No model version '99'"):
        call_command("activate_model", "99", "--by", "lead", "--yes")


def test_clip_batch_test_scores_with_a_registered_version(second_model, tmp_path):
    from conftest import png_bytes

    (tmp_path / "a.png").write_bytes(png_bytes(seed=1))
    (tmp_path / "b.png").write_bytes(png_bytes(seed=2))
    (tmp_path / "pairs.csv").write_text(
        "image_path,text,label\na.png,a red box,1\nb.png,a blue box,0\n"
    )
    out = StringIO()

    call_command(
        "clip_batch_test",
        "--csv",
        str(tmp_path / "pairs.csv"),
        "--model",
        str(second_model.pk),
        "--json",
        stdout=out,
        stderr=StringIO(),
        verbosity=0,
    )

    report = json.loads(out.getvalue())
    assert report["model_version"] == second_model.version
    assert report["n"] == 2
    assert report["threshold"] == 0.5


def test_clip_info_shows_the_activated_version_not_the_settings_model(
    tiny_clip_dir, use_model, second_model, staff
):
    use_model(tiny_clip_dir, PASS_ALL)
    model_version_activate(version=second_model, actor=staff)
    out = StringIO()

    call_command("clip_info", "--json", "--no-load", stdout=out)

    info = json.loads(out.getvalue())
    assert info["model"] == second_model.source
    assert info["version"] == second_model.version
    assert info["activated"] is True
    assert info["threshold_version"] is None


def test_a_score_computed_by_a_model_replaced_meanwhile_is_not_routed(
    tiny_clip_dir,
    use_model,
    second_model,
    staff,
    queued,
    django_capture_on_commit_callbacks,
):
    from clipmatch.services import model_version_active
    from listings.models import ScoringAttempt
    from listings.services.assessment import listing_assess as _assess
    from listings.services.scoring import _finish_scored

    use_model(tiny_clip_dir, PASS_ALL)
    listing = ListingImageFactory().listing
    listing_request_scoring(listing_id=listing.pk)
    listing.refresh_from_db()
    before = model_version_active()  # the worker resolved the model...
    assessment = _assess(listing, before)  # ...and ran it, then:
    model_version_activate(version=second_model, actor=staff)
    attempt = ScoringAttempt.objects.create(
        listing=listing,
        content_hash=listing.content_hash,
        started_at=listing.created_at,
    )
    queued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        outcome = _finish_scored(attempt, before, assessment)

    assert outcome.outcome == "superseded"
    listing.refresh_from_db()
    assert listing.status == Listing.Status.PENDING
    assert listing.scores.count() == 0
    assert queued == [listing.pk]  # scored again, by the version now in force
    attempt.refresh_from_db()
    assert attempt.outcome == ScoringAttempt.Outcome.SUPERSEDED


def test_a_rescore_batch_for_a_replaced_version_routes_nothing(
    tiny_clip_dir, use_model, second_model, staff, queued
):
    from clipmatch.services import model_version_active
    from listings.services.rescoring import listing_rescore

    use_model(tiny_clip_dir, PASS_ALL)
    listing = ListingImageFactory().listing
    listing_request_scoring(listing_id=listing.pk)
    listing_score(listing_id=listing.pk)
    old = model_version_active()
    model_version_activate(version=second_model, actor=staff)

    outcome = listing_rescore(listing_id=listing.pk, active=old)

    assert outcome.outcome == "superseded"
    listing.refresh_from_db()
    assert listing.score.model_version == old.version
    assert listing.scores.count() == 1
