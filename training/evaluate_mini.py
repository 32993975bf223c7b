"""Held-out evaluation of a clipmatch-mini checkpoint on attribute-swapped captions.

For each held-out catalog item the image is scored (raw cosine similarity) against
its true title and against the same title with the category, colour or pattern
swapped (identical wording otherwise), plus the title of a different product; the
same is done for descriptions.  ROC-AUC of true vs swapped is reported per attribute.

    python -m training.evaluate_mini --model clipmatch/bundled/clipmatch-mini [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import roc_auc_score

from training.catalog import (
    ATTRIBUTES,
    CATEGORIES,
    HELDOUT_SEED,
    Product,
    generate_item,
    product_description,
    product_title,
    random_product,
    swap_attribute,
    text_rng,
)

KINDS = ("title", "description")
NEGATIVES = (*ATTRIBUTES, "other")
# The app's default category prompts (CLIPMATCH["PROMPT_TEMPLATES"]); each category's
# vector is the normalised mean of its prompts' embeddings.
PROMPT_TEMPLATES = (
    "a photo of a {}.",
    "a product photo of a {}.",
    "a {} for sale.",
    "a close-up photo of the {}.",
)


def pooled(output) -> torch.Tensor:
    """The projected embeddings from ``get_*_features``, whatever form they come in."""
    # transformers 5 returns a BaseModelOutputWithPooling whose pooler_output holds
    # the projected embeddings; transformers 4 returned the tensor itself.
    if isinstance(output, torch.Tensor):
        return output
    if getattr(output, "pooler_output", None) is not None:
        return output.pooler_output
    return output[0]


@torch.inference_mode()
def embed_images(model, processor, images: Sequence[Image.Image], batch_size=256):
    """L2-normalised image embeddings (float32, CPU) computed via the processor."""
    out = []
    for i in range(0, len(images), batch_size):
        batch = processor(images=list(images[i : i + batch_size]), return_tensors="pt")
        pixels = batch["pixel_values"].to(model.dtype)
        out.append(pooled(model.get_image_features(pixel_values=pixels)).float())
    return F.normalize(torch.cat(out), dim=-1)


@torch.inference_mode()
def embed_texts(model, processor, texts: Sequence[str], batch_size=512):
    """L2-normalised text embeddings; texts longer than the context are truncated."""
    out = []
    for i in range(0, len(texts), batch_size):
        batch = processor(
            text=list(texts[i : i + batch_size]),
            padding=True,
            truncation=True,
            return_tensors="pt",
        )
        feats = model.get_text_features(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
        out.append(pooled(feats).float())
    return F.normalize(torch.cat(out), dim=-1)


def _texts(product: Product, index: int, seed: int) -> tuple[str, str]:
    rng = text_rng(index, seed=seed)
    return product_title(product, rng), product_description(product, rng)


def build_split(n: int, seed: int, size: int):
    """Held-out items with true and swapped texts: (images, products, texts)."""
    images, products = [], []
    texts: dict[str, dict[str, list[str]]] = {
        k: {name: [] for name in ("true", *NEGATIVES)} for k in KINDS
    }
    for i in range(n):
        item = generate_item(i, seed=seed, size=size)
        images.append(item.image)
        products.append(item.product)
        texts["title"]["true"].append(item.title)
        texts["description"]["true"].append(item.description)
        swap_rng = random.Random(f"clipmatch-swap-{seed}-{i}")
        for name in NEGATIVES:
            if name == "other":
                other = item.product
                while other == item.product:
                    other = random_product(swap_rng)
            else:
                other = swap_attribute(item.product, name, swap_rng)
            title, description = _texts(other, i, seed)
            texts["title"][name].append(title)
            texts["description"][name].append(description)
    return images, products, texts


def score_split(model, processor, n: int, seed: int, size: int | None = None):
    """Cosines of each held-out image with its true and negative texts, per kind."""
    size = size or model.config.vision_config.image_size
    images, products, texts = build_split(n, seed, size)
    img = embed_images(model, processor, images)
    scores = {}
    for kind in KINDS:
        scores[kind] = {}
        for name, batch in texts[kind].items():
            txt = embed_texts(model, processor, batch)
            scores[kind][name] = (img * txt).sum(-1).numpy()
    return scores, img, products


def auc_table(scores) -> dict[str, dict[str, float]]:
    """ROC-AUC of true-pair vs negative-pair cosines, per text kind and negative."""
    table = {}
    for kind, by_name in scores.items():
        true = by_name["true"]
        table[kind] = {}
        for name in NEGATIVES:
            neg = by_name[name]
            labels = np.r_[np.ones(len(true)), np.zeros(len(neg))]
            table[kind][name] = float(roc_auc_score(labels, np.r_[true, neg]))
    return table


def pairwise_accuracy(scores) -> dict[str, dict[str, float]]:
    """How often an image's true text beats the same text with a swapped attribute."""
    return {
        kind: {n: float((v["true"] > v[n]).mean()) for n in NEGATIVES}
        for kind, v in scores.items()
    }


def threshold_rates(scores, thresholds) -> dict[str, dict[str, float]]:
    """Share of true and of mismatched pairs falling in each pass/review/hold band."""
    rates = {}
    for kind, by_name in scores.items():
        cut = thresholds[kind]
        true = by_name["true"]
        mismatched = np.concatenate([by_name[k] for k in NEGATIVES])
        row = {}
        for name, values in (("true", true), ("mismatch", mismatched)):
            passed = values >= cut["pass"]
            held = values < cut["hold"]
            row[f"{name}_pass_rate"] = round(float(passed.mean()), 6)
            row[f"{name}_review_rate"] = round(float((~passed & ~held).mean()), 6)
            row[f"{name}_hold_rate"] = round(float(held.mean()), 6)
        rates[kind] = row
    return rates


def category_accuracy(
    model, processor, img, products, templates=PROMPT_TEMPLATES, max_k: int = 3
):
    """Zero-shot top-k category accuracy with prompt-ensembled category vectors."""
    prompts = [t.format(c) for c in CATEGORIES for t in templates]
    txt = embed_texts(model, processor, prompts).view(len(CATEGORIES), -1, img.shape[1])
    classes = F.normalize(txt.mean(dim=1), dim=-1)
    ranks = (img @ classes.T).argsort(dim=-1, descending=True)
    truth = torch.tensor([CATEGORIES.index(p.category) for p in products])
    return {
        k: float((ranks[:, :k] == truth[:, None]).any(-1).float().mean())
        for k in range(1, max_k + 1)
    }


def evaluate(
    model, processor, n: int, seed: int, size: int | None = None, thresholds=None
) -> dict:
    """Every held-out figure for a loaded model, as a JSON-able dict."""
    scores, img, products = score_split(model, processor, n, seed, size)
    extra = {}
    if thresholds:
        extra["threshold_rates"] = threshold_rates(scores, thresholds)
    return {
        "split": {
            "seed": seed,
            "n": n,
            "render_size": size or model.config.vision_config.image_size,
        },
        **extra,
        "roc_auc": auc_table(scores),
        "pairwise_accuracy": pairwise_accuracy(scores),
        "category_topk_accuracy": category_accuracy(model, processor, img, products),
    }


def load(model_dir: str):
    """Load model and processor from a directory (no network), float32 on CPU."""
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(model_dir, local_files_only=True)
    model = model.float().eval()
    processor = CLIPProcessor.from_pretrained(model_dir, local_files_only=True)
    return model, processor


def format_table(result: dict) -> str:
    """A plain-text table of the ROC-AUCs and pairwise accuracies."""
    split = result["split"]
    lines = [
        f"held-out split: seed {split['seed']}, n={split['n']}, "
        f"photos rendered at {split['render_size']} px",
        f"{'text':<12} {'negative':<10} {'ROC-AUC':>8} {'true>neg':>9}",
    ]
    for kind in KINDS:
        for name in NEGATIVES:
            auc = result["roc_auc"][kind][name]
            acc = result["pairwise_accuracy"][kind][name]
            lines.append(f"{kind:<12} {name:<10} {auc:>8.4f} {acc:>9.4f}")
    topk = ", ".join(
        f"top-{k} {v:.4f}" for k, v in result["category_topk_accuracy"].items()
    )
    lines.append(f"zero-shot category (app prompt templates): {topk}")
    for kind, row in result.get("threshold_rates", {}).items():
        lines.append(
            f"{kind} thresholds: true pairs pass {row['true_pass_rate']:.4f} / "
            f"review {row['true_review_rate']:.4f} / hold {row['true_hold_rate']:.4f}; "
            f"mismatches pass {row['mismatch_pass_rate']:.4f} / "
            f"review {row['mismatch_review_rate']:.4f} / "
            f"hold {row['mismatch_hold_rate']:.4f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="checkpoint directory")
    parser.add_argument("--n", type=int, default=2000, help="held-out items")
    parser.add_argument("--seed", type=int, default=HELDOUT_SEED)
    parser.add_argument(
        "--render-size",
        type=int,
        default=None,
        help="render photos at this size (default: the model's image size)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(args.threads, 2)))
    model, processor = load(args.model)
    # Also report how the shipped pass/hold thresholds split this data, if present.
    manifest = Path(args.model) / "clipmatch.json"
    thresholds = None
    if manifest.exists():
        thresholds = json.loads(manifest.read_text()).get("thresholds")
    result = evaluate(model, processor, args.n, args.seed, args.render_size, thresholds)
    print(json.dumps(result) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
