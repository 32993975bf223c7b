"""Tests for the committed clipmatch-mini checkpoint: it loads offline and works."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from training.catalog import (
    CATEGORIES,
    HELDOUT_SEED,
    generate_item,
    product_title,
    swap_attribute,
    text_rng,
)
from training.evaluate_mini import embed_images, embed_texts, pooled

MODEL_DIR = (
    Path(__file__).resolve().parents[2] / "clipmatch" / "bundled" / "clipmatch-mini"
)
N_ITEMS = 24


@pytest.fixture(scope="module")
def loaded():
    from transformers import CLIPModel, CLIPProcessor

    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = CLIPModel.from_pretrained(MODEL_DIR, local_files_only=True).float().eval()
    processor = CLIPProcessor.from_pretrained(MODEL_DIR, local_files_only=True)
    return model, processor


def test_directory_is_complete_and_small():
    names = {p.name for p in MODEL_DIR.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "clipmatch.json",
    } <= names
    assert "processor_config.json" in names or "preprocessor_config.json" in names
    total = sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file())
    assert total < 10 * 1024 * 1024


def test_manifest_has_ordered_thresholds_and_metrics():
    meta = json.loads((MODEL_DIR / "clipmatch.json").read_text())
    assert meta["name"] == "clipmatch-mini"
    assert meta["categories"] == list(CATEGORIES)
    for kind in ("title", "description"):
        cut = meta["thresholds"][kind]
        assert -1 <= cut["hold"] <= cut["pass"] <= 1
    assert meta["category_top_k"] >= 1
    auc = meta["metrics"]["roc_auc"]["title"]
    assert auc["category"] >= 0.95 and auc["colour"] >= 0.95 and auc["pattern"] >= 0.90
    assert meta["train_command"].startswith("python -m training.train_mini")


def test_auto_classes_load_offline():
    from transformers import AutoModel, AutoProcessor, CLIPModel, CLIPTokenizer

    assert isinstance(
        AutoModel.from_pretrained(MODEL_DIR, local_files_only=True), CLIPModel
    )
    processor = AutoProcessor.from_pretrained(MODEL_DIR, local_files_only=True)
    assert isinstance(processor.tokenizer, CLIPTokenizer)
    assert processor.tokenizer.model_max_length == 32


def test_features_are_projected_embeddings(loaded):
    model, processor = loaded
    item = generate_item(0, seed=HELDOUT_SEED, size=64)
    batch = processor(images=[item.image], text=[item.title], return_tensors="pt")
    with torch.inference_mode():
        image = pooled(model.get_image_features(pixel_values=batch["pixel_values"]))
        text = pooled(model.get_text_features(input_ids=batch["input_ids"]))
    assert image.shape == text.shape == (1, model.config.projection_dim)


@pytest.mark.parametrize("attribute", ["colour", "category"])
def test_true_title_beats_swapped_title_on_held_out_items(loaded, attribute):
    model, processor = loaded
    items = [generate_item(i, seed=HELDOUT_SEED + 7, size=64) for i in range(N_ITEMS)]
    swapped = []
    for i, item in enumerate(items):
        other = swap_attribute(item.product, attribute, random.Random(i))
        swapped.append(product_title(other, text_rng(i, seed=HELDOUT_SEED + 7)))
    img = embed_images(model, processor, [item.image for item in items])
    true = (img * embed_texts(model, processor, [it.title for it in items])).sum(-1)
    false = (img * embed_texts(model, processor, swapped)).sum(-1)
    wins = int((true > false).sum())
    assert wins >= N_ITEMS - 2, f"true title won only {wins}/{N_ITEMS}"
    assert float((true - false).mean()) > 0.05


def test_shipped_thresholds_fit_the_shipped_weights(loaded):
    # Guards against retraining without recalibrating: true titles of held-out
    # photos must clear "hold" and mismatched ones must stay under "pass".
    model, processor = loaded
    cut = json.loads((MODEL_DIR / "clipmatch.json").read_text())["thresholds"]["title"]
    seed = HELDOUT_SEED + 11
    items = [generate_item(i, seed=seed, size=64) for i in range(N_ITEMS)]
    others = [
        product_title(
            swap_attribute(item.product, "colour", random.Random(i)),
            text_rng(i, seed=seed),
        )
        for i, item in enumerate(items)
    ]
    img = embed_images(model, processor, [item.image for item in items])
    true = (img * embed_texts(model, processor, [it.title for it in items])).sum(-1)
    false = (img * embed_texts(model, processor, others)).sum(-1)
    assert int((true >= cut["hold"]).sum()) >= N_ITEMS - 1
    assert int((false < cut["pass"]).sum()) >= N_ITEMS - 1
