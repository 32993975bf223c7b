"""Fine-tuning reports the statistic the app routes listings by, for every family.

finetune_clip's validation ROC-AUC must be clip_batch_test's on the same CSV and
the saved model: the same image decoding and preprocessing, the same tokenizing,
padding and windows, the same best-window cosine.
"""

import io
import json

import pytest
from django.core.management import call_command

from conftest import TINY_FAMILIES
from training.tests.test_finetune import colour_catalog

# Longer than the tiny models' 16-token context, the colour named in the first
# window and again in the last: the first window alone is not the app's score.
LONG_TEXT = (
    "a {0} box, leather handbag with checked pattern, shipping worldwide, returns "
    "accepted within thirty days, {0}"
)


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory):
    root = tmp_path_factory.mktemp("long-texts")
    return {
        name: colour_catalog(root / name, renders=renders, seed=seed, text=LONG_TEXT)
        for name, renders, seed in (
            ("train", 3, 1),
            ("val", 3, 2),
            ("regression", 2, 3),
        )
    }


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_finetune_validation_roc_auc_is_clip_batch_test_s(
    family, tiny_family_dirs, catalogs, tmp_path
):
    out = tmp_path / "tuned"
    report_json, batch_json = io.StringIO(), io.StringIO()

    call_command(
        "finetune_clip",
        base=str(tiny_family_dirs[family]),
        output=str(out),
        train_csv=[str(catalogs["train"])],
        val_csv=[str(catalogs["val"])],
        regression_csv=str(catalogs["regression"]),
        epochs=1,
        batch_size=8,
        wise_alphas="0,0.5,1",
        tolerance=1.0,
        threads=1,
        no_register=True,
        json=True,
        stdout=report_json,
        stderr=io.StringIO(),
        verbosity=0,
    )
    call_command(
        "clip_batch_test",
        csv=catalogs["val"],
        model=str(out),
        json=True,
        verbosity=0,
        stdout=batch_json,
    )

    report = json.loads((out / "finetune_report.json").read_text())
    reported = report["metrics"]["validation"]["tuned"]["roc_auc"]
    measured = json.loads(batch_json.getvalue())["roc_auc"]
    assert report["history"][0]["epoch"] == 1
    assert measured == pytest.approx(reported, abs=1e-6)
