"""The fine-tuning program on a tiny real CLIP checkpoint and a small catalog."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from clipmatch.inference.pairs import write_pairs
from conftest import TINY_FAMILIES
from training.finetune import (
    FinetuneConfig,
    FinetuneError,
    choose_alpha,
    finetune,
    load_pairs,
)

REPO = Path(__file__).resolve().parents[2]

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 20),
    "black": (15, 15, 15),
    "white": (245, 245, 245),
}


def colour_catalog(
    folder, *, renders: int, seed: int, flip: bool = False, text: str = "a {} box"
):
    """Squares of one colour on noise; match = its colour's name, mismatch =
    another's (each put in `text`). With flip, the labels are swapped: what
    training learns is wrong there (a regression set that tuning must make worse)."""
    rng = random.Random(seed)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    names = list(COLOURS)
    for name, rgb in COLOURS.items():
        for k in range(renders):
            image = Image.effect_noise((32, 32), 40).convert("RGB")
            side = rng.randint(14, 26)
            x, y = rng.randint(0, 32 - side), rng.randint(0, 32 - side)
            image.paste(rgb, (x, y, x + side, y + side))
            rel = f"img/{name}-{seed}-{k}.png"
            image.save(folder / rel)
            other = rng.choice([n for n in names if n != name])
            rows.append({"image_path": rel, "text": text.format(name), "label": 1})
            rows.append({"image_path": rel, "text": text.format(other), "label": 0})
    if flip:
        for row in rows:
            row["label"] = 1 - row["label"]
    return write_pairs(folder / "pairs.csv", rows)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    return {
        "train": colour_catalog(root / "train", renders=10, seed=1),
        "val": colour_catalog(root / "val", renders=4, seed=2),
        "regression": colour_catalog(root / "regression", renders=3, seed=3),
        "flipped": colour_catalog(root / "flipped", renders=3, seed=3, flip=True),
    }


def config(tiny_clip_dir, catalog, output, **overrides) -> FinetuneConfig:
    values = {
        "base": str(tiny_clip_dir),
        "output": str(output),
        "train_csv": [str(catalog["train"])],
        "val_csv": [str(catalog["val"])],
        "regression_csv": str(catalog["regression"]),
        "epochs": 4,
        "batch_size": 16,
        "lr": 2e-3,
        "threads": 1,
        "tolerance": 1.0,
    }
    values.update(overrides)
    return FinetuneConfig(**values)


def quiet(_line: str) -> None:
    pass


def test_a_fine_tune_on_a_small_catalog_raises_validation_roc_auc(
    tiny_clip_dir, catalog, tmp_path
):
    report = finetune(
        config(tiny_clip_dir, catalog, tmp_path / "out"), progress=False, log=quiet
    )

    val = report["metrics"]["validation"]
    assert val["tuned"]["roc_auc"] >= val["base"]["roc_auc"] + 0.2
    assert val["tuned"]["roc_auc"] >= 0.9
    saved = json.loads((tmp_path / "out" / "clipmatch.json").read_text())
    assert saved["thresholds"] == report["thresholds"]
    assert saved["name"] == "out"
    assert (tmp_path / "out" / "model.safetensors").exists()
    assert not (tmp_path / "out" / "checkpoint").exists()
    on_disk = json.loads((tmp_path / "out" / "finetune_report.json").read_text())
    assert on_disk["accepted"] is True


def test_the_wise_ft_mix_is_the_best_on_validation(tiny_clip_dir, catalog, tmp_path):
    report = finetune(
        config(tiny_clip_dir, catalog, tmp_path / "out", epochs=2),
        progress=False,
        log=quiet,
    )

    candidates = report["wise_ft"]["candidates"]
    assert [c["alpha"] for c in candidates] == [n / 10 for n in range(11)]
    tuned = [c for c in candidates if c["alpha"] > 0]
    best = max(c["val_roc_auc"] for c in tuned)
    chosen = next(c for c in candidates if c["alpha"] == report["wise_ft"]["alpha"])
    assert chosen["alpha"] > 0
    assert chosen["val_roc_auc"] == pytest.approx(best, abs=1e-6)
    assert report["metrics"]["validation"]["tuned"]["roc_auc"] == pytest.approx(
        chosen["val_roc_auc"]
    )


def test_choose_alpha_prefers_validation_within_the_regression_tolerance():
    candidates = [
        {"alpha": 0.0, "val_roc_auc": 0.5, "regression_roc_auc": 0.99},
        {"alpha": 0.5, "val_roc_auc": 0.8, "regression_roc_auc": 0.98},
        {"alpha": 1.0, "val_roc_auc": 0.9, "regression_roc_auc": 0.90},
    ]

    assert choose_alpha(candidates, 0.99, 0.02) == (0.5, True)
    assert choose_alpha(candidates, 0.99, 0.2) == (1.0, True)
    assert choose_alpha(candidates, 0.99, 0.001) == (1.0, False)


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_same_weights(
    tiny_clip_dir, catalog, tmp_path
):
    from safetensors.torch import load_file

    straight = finetune(
        config(tiny_clip_dir, catalog, tmp_path / "straight", epochs=3),
        progress=False,
        log=quiet,
    )

    def crash(epoch: int) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    interrupted = config(tiny_clip_dir, catalog, tmp_path / "resumed", epochs=3)
    with pytest.raises(KeyboardInterrupt):
        finetune(interrupted, progress=False, log=quiet, on_epoch_end=crash)
    assert (tmp_path / "resumed" / "checkpoint" / "state.pt").exists()
    with pytest.raises(FinetuneError, match="holds an unfinished run"):
        finetune(interrupted, progress=False, log=quiet)
    lines = []
    resumed = finetune(interrupted, resume=True, progress=False, log=lines.append)

    assert lines[1] == (
        f"resumed from {tmp_path / 'resumed' / 'checkpoint' / 'state.pt'} after epoch 2"
    )
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max().item() < 1e-5, key
    assert resumed["metrics"]["validation"]["tuned"]["roc_auc"] == pytest.approx(
        straight["metrics"]["validation"]["tuned"]["roc_auc"], abs=1e-6
    )


def test_a_run_that_makes_the_regression_set_worse_is_refused_and_says_why(
    tiny_clip_dir, catalog, tmp_path
):
    report = finetune(
        config(
            tiny_clip_dir,
            catalog,
            tmp_path / "out",
            regression_csv=str(catalog["flipped"]),
            tolerance=0.02,
        ),
        progress=False,
        log=quiet,
    )

    regression = report["metrics"]["regression"]
    drop = regression["base"]["roc_auc"] - regression["tuned"]["roc_auc"]
    assert drop > 0.02
    assert report["accepted"] is False
    assert report["refusals"] == [
        f"regression ROC-AUC fell from {regression['base']['roc_auc']:.4f} to "
        f"{regression['tuned']['roc_auc']:.4f} (by {drop:.4f}, tolerance 0.0200)."
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "image_path,text,label\nimg/a.png,a red box,1\nimg/gone.png,a box,0\n",
            "row 3: image file img/gone.png does not exist.",
        ),
        (
            "image_path,text,label\nimg/a.png,a red box,1\nimg/bad.png,a box,0\n",
            "row 3: image img/bad.png cannot be read (UnidentifiedImageError",
        ),
        (
            "image,caption,label\nimg/a.png,a red box,1\n",
            "missing column(s) image_path, text; expected image_path,text,label "
            "(found image,caption,label).",
        ),
        (
            "image_path,text\nimg/a.png,a red box\n",
            "missing column(s) label",
        ),
        (
            "image_path,text,label\nimg/a.png,a red box,1\nimg/a.png,a box,yes\n",
            "row 3: label must be 0 or 1, not 'yes'.",
        ),
    ],
    ids=["missing-file", "unreadable-image", "wrong-columns", "no-label", "bad-label"],
)
def test_a_bad_csv_is_refused_with_the_row_and_the_problem(tmp_path, content, message):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "img" / "a.png")
    (tmp_path / "img" / "bad.png").write_bytes(b"not a png at all")
    path = tmp_path / "pairs.csv"
    path.write_text(content)

    with pytest.raises(FinetuneError) as caught:
        load_pairs([path], "training")

    assert str(caught.value).startswith(f"training data: {path}")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("loss", "how", "frozen", "trained"),
    [
        ("contrastive", "vision", "vision_model.", "text_model."),
        ("bce", "text", "text_model.", "vision_model."),
        ("both", "backbone", "vision_model.embeddings.", "visual_projection."),
    ],
)
def test_frozen_parts_keep_the_base_weights_and_the_rest_learns(
    tiny_clip_dir, catalog, tmp_path, loss, how, frozen, trained
):
    from safetensors.torch import load_file

    base = load_file(tiny_clip_dir / "model.safetensors")
    report = finetune(
        config(
            tiny_clip_dir,
            catalog,
            tmp_path / "out",
            epochs=1,
            loss=loss,
            freeze=how,
            trainable_blocks=1,
            wise_alphas=(1.0,),
        ),
        progress=False,
        log=quiet,
    )
    tuned = load_file(tmp_path / "out" / "model.safetensors")

    frozen_keys = [k for k in base if k.startswith(frozen)]
    trained_keys = [k for k in base if k.startswith(trained)]
    assert frozen_keys and trained_keys
    assert all(base[k].equal(tuned[k]) for k in frozen_keys)
    assert any(not base[k].equal(tuned[k]) for k in trained_keys)
    assert report["config"]["loss"] == loss


def test_a_cached_synthetic_catalog_is_only_ever_seen_whole(tmp_path, monkeypatch):
    from training.finetune import data as program

    monkeypatch.setattr(program, "DATA_DIR", tmp_path)
    (tmp_path / ".replay-train-seed0-n3-leftover").mkdir()  # a writer that died

    path = program.replay_csv_default(3)

    assert path == tmp_path / "replay-train-seed0-n3" / "catalog.csv"
    assert len(path.read_text().splitlines()) == 4  # header and 3 pairs
    assert program.replay_csv_default(3) == path


def _without_django_settings() -> dict:
    return {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}


def test_the_program_imports_no_django_and_only_the_inference_core_of_the_app():
    probe = (
        "import json, sys, training.finetune, training.train_mini; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('django', 'listings', 'config', 'clipmatch'))))"
    )

    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env=_without_django_settings(),
        capture_output=True,
        text=True,
        check=True,
    )

    imported = json.loads(result.stdout)
    assert "clipmatch.inference.engine" in imported  # the probe sees the app's modules
    outside_the_core = [
        m
        for m in imported
        if m != "clipmatch" and not m.startswith("clipmatch.inference")
    ]
    assert outside_the_core == []


def test_python_dash_m_runs_the_program_and_bad_input_exits_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "training.finetune", "--base", str(tmp_path)]
        + ["--output", str(tmp_path / "out")],
        cwd=REPO,
        env=_without_django_settings(),
        capture_output=True,
        text=True,
    )

    assert result.returncode == 2
    assert result.stderr == (
        "error: No training data: give at least one training CSV.\n"
    )


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_every_freeze_mode_works_on_every_family(tiny_family_dirs, family):
    from training.finetune.model import freeze, load_model

    def trainable(how: str) -> set[str]:
        model = load_model(tiny_family_dirs[family], "cpu").model
        model.requires_grad_(True)
        freeze(model, how, trainable_blocks=1)
        return {n for n, p in model.named_parameters() if p.requires_grad}

    vision, text = trainable("vision"), trainable("text")
    assert vision and not any(n.startswith("vision_model.") for n in vision)
    assert "visual_projection.weight" not in vision
    assert any(n.startswith("text_model.") for n in vision)
    assert text and not any(n.startswith("text_model.") for n in text)
    assert "text_projection.weight" not in text
    assert any(n.startswith("vision_model.") for n in text)

    backbone = trainable("backbone")
    for tower in ("vision_model.", "text_model."):
        kept = {n for n in backbone if n.startswith(tower)}
        assert kept, f"{family}: nothing in {tower} left to train"
        assert not any("embeddings" in n for n in kept), f"{family}: {sorted(kept)}"
