"""Model versions in the admin: metrics, the distribution plot, and actions."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from clipmatch.models import ModelVersion, ThresholdVersion
from clipmatch.plots import histogram_svg
from clipmatch.services import model_version_register
from conftest import TINY_THRESHOLDS, build_tiny_clip

pytestmark = pytest.mark.django_db
HISTOGRAM = {"edges": [0.0, 0.25, 0.5, 0.75, 1.0], "match": [0, 1, 3, 6],
             "mismatch": [5, 4, 1, 0]}  # fmt: skip


@pytest.fixture
def boss(client):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(user)
    return user


@pytest.fixture
def version(tmp_path):
    path = build_tiny_clip(tmp_path / "tuned", seed=3)
    meta = json.loads((path / "clipmatch.json").read_text())
    meta["metrics"] = {"validation": {"n": 20, "roc_auc": 0.9375, "pr_auc": 0.95}}
    (path / "clipmatch.json").write_text(json.dumps(meta))
    report = {"accepted": True, "refusals": [], "distribution": HISTOGRAM}
    return model_version_register(path=str(path), report=report)[0]


def test_the_svg_draws_both_distributions_and_both_thresholds():
    counts = {"match": HISTOGRAM["match"], "mismatch": HISTOGRAM["mismatch"]}
    svg = str(
        histogram_svg(
            counts, HISTOGRAM["edges"], lines={"pass": 0.6, "hold": 0.3}, share=True
        )
    )

    assert svg.startswith('<svg class="chart"')
    # non-empty bins, plus each legend swatch
    assert svg.count('fill="#1a7f37" fill-opacity') == 3 + 1
    assert svg.count('fill="#cf222e" fill-opacity') == 3 + 1
    assert "<title>match: 6</title>" in svg
    assert ">hold 0.300</text>" in svg
    assert ">pass 0.600</text>" in svg
    assert ">match (10)</text>" in svg
    assert ">mismatch (10)</text>" in svg


def test_the_change_page_shows_metrics_and_the_plot(client, boss, version):
    url = reverse("admin:clipmatch_modelversion_change", args=[version.pk])

    page = client.get(url).content.decode()

    assert "<td>0.9375</td>" in page
    assert "<svg" in page
    assert ">pass 0.500</text>" in page
    assert ">hold -0.500</text>" in page


def test_the_activate_action_activates_through_the_service(
    client, boss, version, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr("listings.signals.queue_catalog_rescore", lambda pk: None)
    url = reverse("admin:clipmatch_modelversion_changelist")

    response = client.post(
        url, {"action": "activate", "_selected_action": [version.pk]}, follow=True
    )

    version.refresh_from_db()
    assert version.is_active
    assert version.activated_by == boss
    assert [str(m) for m in response.context["messages"]] == [
        f"{version} is active; a rescore of the catalog is queued."
    ]


def test_the_apply_action_applies_a_proposal(client, boss, version):
    proposal = ThresholdVersion.objects.create(
        model_version=version,
        thresholds={
            "title": {"pass": 0.4, "hold": 0.1},
            "description": {"pass": 0.4, "hold": 0.1},
        },
    )
    url = reverse("admin:clipmatch_thresholdversion_changelist")

    client.post(url, {"action": "apply", "_selected_action": [proposal.pk]})

    proposal.refresh_from_db()
    assert proposal.status == "applied"
    assert proposal.applied_by == boss
    assert ModelVersion.objects.get(pk=version.pk).is_active is False


def test_the_configured_model_is_shown_in_force_until_a_version_is_activated(
    client, boss, version, use_model, tiny_clip_dir, monkeypatch
):
    from clipmatch.services import model_version_activate, model_version_active

    use_model(tiny_clip_dir, TINY_THRESHOLDS)
    configured = model_version_active().version
    url = reverse("admin:clipmatch_modelversion_changelist")

    def in_force(page):
        return [
            row.version for row in page.context["cl"].result_list if row.in_force_flag
        ]

    assert in_force(client.get(url)) == [configured.version]

    monkeypatch.setattr("listings.signals.queue_catalog_rescore", lambda pk: None)
    model_version_activate(version=version, actor=boss)

    assert in_force(client.get(url)) == [version.version]


def test_the_bundled_models_figures_and_thresholds_are_tables(client, boss):
    version = ModelVersion.objects.create(
        name="mini",
        source="bundled",
        fingerprint="f" * 64,
        thresholds={"title": {"pass": 0.25, "hold": 0.125}, "category_top_k": 3},
        metrics={
            "roc_auc": {"title": 0.99, "description": 0.985},
            "pairwise_accuracy": {"title": 0.97, "description": 0.96},
            "split": {"n": 600, "seed": 7},  # jsonb orders keys: shortest first
        },
    )
    url = reverse("admin:clipmatch_modelversion_change", args=[version.pk])

    page = client.get(url).content.decode()

    assert "<tr><th>roc_auc</th><td>0.9900</td><td>0.9850</td></tr>" in page
    assert "<tr><th>pairwise_accuracy</th><td>0.9700</td><td>0.9600</td></tr>" in page
    assert "<th></th><th>n</th><th>seed</th></tr><tr><th>split</th><td>600</td>" in page
    assert "<tr><th>title</th><td>0.2500</td><td>0.1250</td></tr>" in page
    assert "must rank within the top 3" in page
    assert page.count("0.9900") == 1
