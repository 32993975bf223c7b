"""Fine-tune a CLIP checkpoint on labelled image-text pairs, safely, and measure it.

    python -m training.finetune --base clipmatch/bundled/clipmatch-mini \\
        --train-csv train.csv --val-csv val.csv --output runs/tuned

Runs without Django (on a GPU box alone if need be). Data are seed-format CSVs
(``image_path,text,label[,category]``). The loss is CLIP's contrastive loss over the
batch's matching pairs (both directions) and/or binary cross-entropy on every
labelled pair, on the cosine times the model's learnable temperature plus a
learnable bias. Hard negatives are mined from the data itself: an image against the
text of another product in the same category. Against forgetting: frozen towers or
blocks, a low learning rate with warm-up, and WiSE-FT (weights interpolated between
base and tuned) with the mixing weight chosen on validation. Base and result are
measured on validation and on a regression set the base model already handled; a
result that is worse on either beyond a tolerance is marked refused, with why.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from clipmatch.inference.pairs import Pair, PairsError, open_images, read_pairs

DATA_DIR = Path(__file__).resolve().parent / "data"
META_FILE = "clipmatch.json"
REPORT_FILE = (
    "finetune_report.json"  # clipmatch.inference.engine leaves it out of versions
)
CHECKPOINT = "checkpoint/state.pt"
LOSSES = ("contrastive", "bce", "both")
FREEZE = ("none", "vision", "text", "backbone")
WISE_ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# Thresholds proposed for the result, from its validation scores (the app's
# calibrate_thresholds refines them later from moderators' decisions).
HOLD_MATCH_QUANTILE = 0.02
PASS_MISMATCH_QUANTILE = 0.95
HISTOGRAM_BINS = 40


class FinetuneError(RuntimeError):
    """Bad input or a run that cannot go on; nothing is written for a model."""


@dataclass
class FinetuneConfig:
    """Everything that decides a run; stored in the report and the checkpoint."""

    base: str
    output: str
    train_csv: list[str] = field(default_factory=list)
    val_csv: list[str] = field(default_factory=list)
    regression_csv: str = ""
    regression_n: int = 400
    replay_csv: str = ""
    replay_n: int = 1000
    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 0.1
    warmup: float = 0.1
    loss: str = "both"
    freeze: str = "none"
    trainable_blocks: int = 2
    hard_negatives: int = 1
    wise_alphas: tuple[float, ...] = WISE_ALPHAS
    tolerance: float = 0.02
    device: str = "auto"
    seed: int = 0
    threads: int = 2
    name: str = ""

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise FinetuneError(f"--loss must be one of {', '.join(LOSSES)}.")
        if self.freeze not in FREEZE:
            raise FinetuneError(f"--freeze must be one of {', '.join(FREEZE)}.")
        if self.epochs < 1 or self.batch_size < 2:
            raise FinetuneError("--epochs must be >= 1 and --batch-size >= 2.")
        if not 0 < self.lr < 1:
            raise FinetuneError("--lr must be between 0 and 1.")
        if not self.wise_alphas or any(not 0 <= a <= 1 for a in self.wise_alphas):
            raise FinetuneError("WiSE-FT mixing weights must lie in [0, 1].")


# ---------------------------------------------------------------------------- data


@dataclass
class PairSet:
    """Labelled pairs with their images preprocessed once, as model inputs."""

    pairs: list[Pair]
    pixels: object  # float tensor (images, 3, H, W)
    image_of: list[int]  # pair -> row of pixels
    group_of_image: list[int]
    group_of_text: dict[str, int]

    @property
    def labels(self) -> list[int]:
        return [p.label for p in self.pairs]

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.pairs]


def load_pairs(paths: Sequence[str | Path], role: str) -> list[Pair]:
    """Read labelled CSVs and open every image now, so a bad row stops the run
    before any training, with the row named."""
    pairs: list[Pair] = []
    for path in paths:
        try:
            rows = read_pairs(Path(path), require_label=True)
            open_images(rows)  # every image must decode; the error names the row
        except PairsError as exc:
            raise FinetuneError(f"{role} data: {exc}") from exc
        pairs.extend(rows)
    return pairs


def _groups(pairs: Sequence[Pair]) -> tuple[dict[Path, int], dict[str, int]]:
    """Connected components of images and texts joined by matching pairs.

    Two things in one component are known to match (two photos of one product
    described by a shared phrasing), so they are never used as each other's
    negatives.
    """
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        a, b = find(("i", str(p.path))), find(("t", p.text))
        if p.label == 1 and a != b:
            parent[a] = b
    ids: dict[tuple[str, str], int] = {}
    images, texts = {}, {}
    for p in pairs:
        images[p.path] = ids.setdefault(find(("i", str(p.path))), len(ids))
        texts[p.text] = ids.setdefault(find(("t", p.text)), len(ids))
    return images, texts


def prepare(pairs: list[Pair], processor) -> PairSet:
    """Decode each distinct image once and turn it into pixel values."""
    import torch

    paths = list(dict.fromkeys(p.path for p in pairs))
    index = {path: n for n, path in enumerate(paths)}
    first = {}
    for p in pairs:
        first.setdefault(p.path, p)
    images = open_images([first[path] for path in paths])
    chunks = []
    for start in range(0, len(images), 256):
        out = processor.image_processor(
            images=images[start : start + 256], return_tensors="pt"
        )
        chunks.append(out["pixel_values"].float())
    image_groups, text_groups = _groups(pairs)
    return PairSet(
        pairs=pairs,
        pixels=torch.cat(chunks),
        image_of=[index[p.path] for p in pairs],
        group_of_image=[image_groups[path] for path in paths],
        group_of_text=text_groups,
    )


def _cached_catalog(name: str, n: int, seed: int) -> Path:
    """A synthetic catalog CSV under training/data, written once and only ever
    seen whole: it is written aside and moved into place, so an interrupted
    writer never leaves a short catalog behind for the next run."""
    from training.catalog import write_catalog_csv

    folder = DATA_DIR / name
    csv_path = folder / "catalog.csv"
    if not csv_path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=DATA_DIR))
        write_catalog_csv(partial, n=n, seed=seed, size=128)
        try:
            partial.rename(folder)
        except OSError:  # another run finished first: keep its copy
            shutil.rmtree(partial, ignore_errors=True)
    return csv_path


def regression_csv_default(n: int) -> Path:
    """A held-out split of the synthetic catalog (the default regression set)."""
    from training.catalog import HELDOUT_SEED

    return _cached_catalog(f"regression-heldout-n{n}", n, HELDOUT_SEED)


def replay_csv_default(n: int) -> Path:
    """Pairs from the synthetic catalog's training seeds: rehearsal data from the
    domain of the default regression set, disjoint from it."""
    return _cached_catalog(f"replay-train-seed0-n{n}", n, 0)


def mine_negatives(data: PairSet, rng: random.Random, per_positive: int) -> list[int]:
    """(image row, text) negatives: a matching pair's image against the text of a
    matching pair of another product, in the same category where one is given."""
    positives = [n for n, p in enumerate(data.pairs) if p.label == 1]
    by_category: dict[str, list[int]] = {}
    for n in positives:
        by_category.setdefault(data.pairs[n].category, []).append(n)
    mined = []
    for n in positives:
        pool = by_category[data.pairs[n].category]
        group = data.group_of_image[data.image_of[n]]
        for _ in range(per_positive):
            for _attempt in range(8):
                other = pool[int(rng.random() * len(pool))]
                if data.group_of_text[data.pairs[other].text] != group:
                    mined.append((data.image_of[n], data.pairs[other].text))
                    break
    return mined


# --------------------------------------------------------------------------- model


def load_model(path: str | Path):
    """Model and processor from a save_pretrained folder, float32, no network."""
    from transformers import AutoModel, AutoProcessor

    path = Path(path)
    if not (path / "config.json").exists():
        raise FinetuneError(f"--base {path} is not a save_pretrained folder.")
    model = AutoModel.from_pretrained(path, local_files_only=True).float()
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    for method in ("get_image_features", "get_text_features"):
        if not hasattr(model, method):
            raise FinetuneError(f"{path} is not a CLIP-family model: no {method}().")
    return model, processor


def _features(output):
    """transformers 5 returns an output object where 4.x returned a tensor."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    for name in ("image_embeds", "text_embeds", "pooler_output"):
        value = getattr(output, name, None)
        if value is not None:
            return value
    return output[0]


def encode_images(model, pixels, device: str):
    import torch.nn.functional as F

    feats = model.get_image_features(pixel_values=pixels.to(device))
    return F.normalize(_features(feats).float(), dim=-1)


def encode_texts(model, tokenizer, texts: Sequence[str], device: str):
    import torch.nn.functional as F

    tok = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
    feats = model.get_text_features(
        input_ids=tok["input_ids"].to(device),
        attention_mask=tok["attention_mask"].to(device),
    )
    return F.normalize(_features(feats).float(), dim=-1)


def similarities(model, tokenizer, data: PairSet, device: str) -> np.ndarray:
    """Raw cosine of every pair's image with its text (what the app thresholds)."""
    import torch

    model.eval()
    with torch.inference_mode():
        image_vecs = torch.cat(
            [
                encode_images(model, data.pixels[s : s + 256], device)
                for s in range(0, len(data.pixels), 256)
            ]
        )
        unique = list(dict.fromkeys(data.texts))
        text_vecs = torch.cat(
            [
                encode_texts(model, tokenizer, unique[s : s + 256], device)
                for s in range(0, len(unique), 256)
            ]
        )
    row = {t: n for n, t in enumerate(unique)}
    img = image_vecs[data.image_of]
    txt = text_vecs[[row[t] for t in data.texts]]
    return (img * txt).sum(-1).cpu().numpy().astype(np.float64)


def measure(labels: Sequence[int], scores: np.ndarray, threshold: float) -> dict:
    from clipmatch.inference.metrics import binary_metrics

    return binary_metrics(list(labels), scores.tolist(), threshold)


def propose_thresholds(labels: Sequence[int], scores: np.ndarray) -> dict:
    """hold below all but 2% of matches, pass above 95% of mismatches."""
    y = np.asarray(labels)
    matches, mismatches = scores[y == 1], scores[y == 0]
    if not len(matches) or not len(mismatches):
        raise FinetuneError("Validation needs both matching and mismatched pairs.")
    hold = float(np.quantile(matches, HOLD_MATCH_QUANTILE))
    pass_ = float(np.quantile(mismatches, PASS_MISMATCH_QUANTILE))
    hold = min(hold, pass_)
    cut = {"pass": round(pass_, 4), "hold": round(hold, 4)}
    return {"title": dict(cut), "description": dict(cut)}


def histogram(labels: Sequence[int], scores: np.ndarray) -> dict:
    """Score distributions of matches and mismatches on shared bins (for plots)."""
    y = np.asarray(labels)
    lo, hi = float(scores.min()), float(scores.max())
    if hi <= lo:
        hi = lo + 1e-6
    edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
    return {
        "edges": [round(float(e), 5) for e in edges],
        "match": np.histogram(scores[y == 1], edges)[0].tolist(),
        "mismatch": np.histogram(scores[y == 0], edges)[0].tolist(),
    }


def freeze(model, how: str, trainable_blocks: int) -> int:
    """Freeze a tower, or every block but the last few of each; returns the number
    of trainable parameters."""
    if how in ("vision", "backbone"):
        _freeze_tower(model.vision_model, how, trainable_blocks)
    if how in ("text", "backbone"):
        _freeze_tower(model.text_model, how, trainable_blocks)
    if how == "vision":
        model.visual_projection.requires_grad_(False)
    if how == "text":
        model.text_projection.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _freeze_tower(tower, how: str, trainable_blocks: int) -> None:
    tower.requires_grad_(False)
    if how == "backbone":
        layers = tower.encoder.layers
        for layer in layers[max(0, len(layers) - trainable_blocks) :]:
            layer.requires_grad_(True)
        for name in ("post_layernorm", "final_layer_norm"):
            if hasattr(tower, name):
                getattr(tower, name).requires_grad_(True)


def wise_mix(base_state: dict, tuned_state: dict, alpha: float) -> dict:
    """WiSE-FT: (1 - alpha) * base + alpha * tuned, for floating-point weights."""
    mixed = {}
    for key, tuned in tuned_state.items():
        base = base_state[key]
        if tuned.is_floating_point():
            mixed[key] = base * (1 - alpha) + tuned * alpha
        else:
            mixed[key] = tuned
    return mixed


# --------------------------------------------------------------------------- train


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def _batches(data: PairSet, mined: list, batch_size: int, rng: random.Random):
    """Shuffled batches of (image row, text, label, text group) items."""
    items = [
        (data.image_of[n], p.text, p.label, data.group_of_text[p.text])
        for n, p in enumerate(data.pairs)
    ]
    items += [(img, text, 0, data.group_of_text[text]) for img, text in mined]
    rng.shuffle(items)
    return [items[s : s + batch_size] for s in range(0, len(items), batch_size)]


def _step_loss(model, tokenizer, bias, data: PairSet, batch, loss_kind, device):
    import torch
    import torch.nn.functional as F

    rows = list(dict.fromkeys(item[0] for item in batch))
    texts = list(dict.fromkeys(item[1] for item in batch))
    img = encode_images(model, data.pixels[rows], device)
    txt = encode_texts(model, tokenizer, texts, device)
    scale = model.logit_scale.exp().clamp(max=100)
    row_of = {r: n for n, r in enumerate(rows)}
    col_of = {t: n for n, t in enumerate(texts)}
    i = torch.tensor([row_of[item[0]] for item in batch], device=device)
    j = torch.tensor([col_of[item[1]] for item in batch], device=device)
    labels = torch.tensor([float(item[2]) for item in batch], device=device)
    total = torch.zeros((), device=device)
    if loss_kind in ("bce", "both"):
        logits = scale * (img[i] * txt[j]).sum(-1) + bias
        losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        # Positives and negatives each carry half the loss, however many there are.
        parts = [losses[labels == v].mean() for v in (1.0, 0.0) if (labels == v).any()]
        total = total + sum(parts) / len(parts)
    positive = [k for k, item in enumerate(batch) if item[2] == 1]
    if loss_kind in ("contrastive", "both") and len(positive) > 1:
        pi, pj = i[positive], j[positive]
        logits = scale * img[pi] @ txt[pj].T
        image_groups = [data.group_of_image[batch[k][0]] for k in positive]
        text_groups = [batch[k][3] for k in positive]
        same = torch.tensor(
            [[a == b for b in text_groups] for a in image_groups], device=device
        )
        same.fill_diagonal_(False)  # known matches elsewhere are not negatives
        target = torch.arange(len(positive), device=device)
        i2t = F.cross_entropy(logits.masked_fill(same, float("-inf")), target)
        t2i = F.cross_entropy(logits.T.masked_fill(same.T, float("-inf")), target)
        total = total + (i2t + t2i) / 2
    return total


@dataclass
class RunState:
    """What a checkpoint holds besides the weights."""

    epoch: int = 0
    step: int = 0
    history: list = field(default_factory=list)


def _pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FinetuneError("--device cuda but no CUDA device is here.")
    return device


def finetune(
    config: FinetuneConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run one fine-tune end to end; returns the report (also written to output)."""
    import torch
    from tqdm import tqdm

    config.check()
    started = time.time()
    torch.set_num_threads(max(1, config.threads))
    device = _pick_device(config.device)
    out = Path(config.output)
    checkpoint_path = out / CHECKPOINT
    if not config.train_csv:
        raise FinetuneError("No training data: give at least one training CSV.")
    if not config.val_csv:
        raise FinetuneError("No validation data: give a validation CSV.")
    if checkpoint_path.exists() and not resume:
        raise FinetuneError(
            f"{out} holds an unfinished run; resume it (--resume) or pick another "
            "--output."
        )
    if (out / META_FILE).exists() and not checkpoint_path.exists():
        raise FinetuneError(f"{out} already holds a model; pick another --output.")

    train_pairs = load_pairs(config.train_csv, "training")
    val_pairs = load_pairs(config.val_csv, "validation")
    regression_path = config.regression_csv or str(
        regression_csv_default(config.regression_n)
    )
    regression_pairs = load_pairs([regression_path], "regression")
    replay_path = config.replay_csv
    if not replay_path and not config.regression_csv and config.replay_n > 0:
        replay_path = str(replay_csv_default(config.replay_n))
    replay_pairs = load_pairs([replay_path], "replay") if replay_path else []
    for pair in replay_pairs:  # mined negatives stay within the replayed domain
        pair.category = pair.category or "(replay)"
    for role, pairs in (("training", train_pairs), ("validation", val_pairs)):
        if {p.label for p in pairs} != {0, 1}:
            raise FinetuneError(f"The {role} data need both labels, 0 and 1.")

    base_model, processor = load_model(config.base)
    base_meta = _meta(Path(config.base))
    tokenizer = processor.tokenizer
    train = prepare(train_pairs + replay_pairs, processor)
    val = prepare(val_pairs, processor)
    regression = prepare(regression_pairs, processor)
    log(
        f"{len(train_pairs)} training pairs ({len(train.pixels)} images), "
        f"{len(val_pairs)} validation, {len(regression_pairs)} regression; "
        f"device {device}"
    )

    base_model.to(device)
    base_state = {k: v.detach().clone() for k, v in base_model.state_dict().items()}
    base_val = similarities(base_model, tokenizer, val, device)
    base_regression = similarities(base_model, tokenizer, regression, device)

    torch.manual_seed(config.seed)
    model = base_model
    trainable = freeze(model, config.freeze, config.trainable_blocks)
    bias = torch.nn.Parameter(torch.zeros((), device=device))
    params = [p for p in model.parameters() if p.requires_grad] + [bias]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    n_items = len(train.pairs) + config.hard_negatives * sum(train.labels)
    steps_per_epoch = math.ceil(n_items / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = max(1, int(config.warmup * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, warmup)
    )
    state = RunState()
    fingerprint = _config_fingerprint(config)
    if resume and checkpoint_path.exists():
        saved = torch.load(checkpoint_path, map_location=device, weights_only=False)
        if saved["config"] != fingerprint:
            raise FinetuneError(
                f"The checkpoint in {out} was made with other settings; "
                "resume with the same ones or pick another --output."
            )
        model.load_state_dict(saved["model"])
        bias.data.copy_(saved["bias"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = RunState(**saved["state"])
        log(f"resumed from {checkpoint_path} after epoch {state.epoch}")
    else:
        with torch.no_grad():  # start the bias where the base model's scores sit
            bias.fill_(-model.logit_scale.exp().clamp(max=100).item() * _mid(base_val))

    train_started = time.time()
    for epoch in range(state.epoch, config.epochs):
        rng = random.Random(f"clipmatch-finetune-{config.seed}-{epoch}")
        torch.manual_seed(config.seed * 1000 + epoch)
        mined = mine_negatives(train, rng, config.hard_negatives)
        batches = _batches(train, mined, config.batch_size, rng)
        model.train()
        running = []
        bar = tqdm(
            batches,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="batch",
            file=sys.stderr,
            disable=not progress,
        )
        for batch in bar:
            loss = _step_loss(model, tokenizer, bias, train, batch, config.loss, device)
            if not loss.requires_grad:  # contrastive only, under two matches
                continue
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            state.step += 1
            running.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(running[-20:]):.3f}")
        bar.close()
        val_scores = similarities(model, tokenizer, val, device)
        val_auc = measure(val.labels, val_scores, 0.0)["roc_auc"]
        if not running:
            raise FinetuneError(
                f"Epoch {epoch + 1} had no batch with a loss: with --loss "
                "contrastive a batch needs at least two matching pairs."
            )
        state.epoch = epoch + 1
        state.history.append(
            {
                "epoch": epoch + 1,
                "loss": float(np.mean(running)),
                "val_roc_auc": val_auc,
            }
        )
        log(
            f"epoch {epoch + 1}: loss {np.mean(running):.4f}, val ROC-AUC {val_auc:.4f}"
        )
        checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "config": fingerprint,
                "model": model.state_dict(),
                "bias": bias.detach(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "state": asdict(state),
            },
            checkpoint_path,
        )
        if on_epoch_end:
            on_epoch_end(epoch + 1)
    train_seconds = time.time() - train_started

    tuned_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    base_regression_auc = measure(regression.labels, base_regression, 0.0)["roc_auc"]
    candidates = []
    for alpha in config.wise_alphas:
        model.load_state_dict(wise_mix(base_state, tuned_state, alpha))
        scores = similarities(model, tokenizer, val, device)
        kept = similarities(model, tokenizer, regression, device)
        candidates.append(
            {
                "alpha": alpha,
                "val_roc_auc": measure(val.labels, scores, 0.0)["roc_auc"],
                "regression_roc_auc": measure(regression.labels, kept, 0.0)["roc_auc"],
            }
        )
    alpha, _ = choose_alpha(candidates, base_regression_auc, config.tolerance)
    model.load_state_dict(wise_mix(base_state, tuned_state, alpha))
    val_scores = similarities(model, tokenizer, val, device)
    regression_scores = similarities(model, tokenizer, regression, device)
    thresholds = propose_thresholds(val.labels, val_scores)
    base_thresholds = base_meta.get("thresholds") or thresholds
    cut = thresholds["title"]["pass"]
    base_cut = base_thresholds["title"]["pass"]
    metrics = {
        "validation": {
            "base": measure(val.labels, base_val, base_cut),
            "tuned": measure(val.labels, val_scores, cut),
        },
        "regression": {
            "base": measure(regression.labels, base_regression, base_cut),
            "tuned": measure(regression.labels, regression_scores, cut),
        },
    }
    refusals = []
    for split, figures in metrics.items():
        drop = figures["base"]["roc_auc"] - figures["tuned"]["roc_auc"]
        if drop > config.tolerance:
            refusals.append(
                f"{split} ROC-AUC fell from {figures['base']['roc_auc']:.4f} to "
                f"{figures['tuned']['roc_auc']:.4f} (by {drop:.4f}, tolerance "
                f"{config.tolerance:.4f})."
            )

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    name = config.name or out.name
    report = {
        "name": name,
        "accepted": not refusals,
        "refusals": refusals,
        "base": config.base,
        "device": device,
        "data": {
            "train_pairs": len(train_pairs),
            "train_images": len(train.pixels),
            "replay_pairs": len(replay_pairs),
            "replay_csv": replay_path,
            "mined_negatives_per_epoch": config.hard_negatives * sum(train.labels),
            "val_pairs": len(val_pairs),
            "regression_pairs": len(regression_pairs),
            "regression_csv": regression_path,
        },
        "trainable_parameters": trainable,
        "wise_ft": {"candidates": candidates, "alpha": alpha},
        "history": state.history,
        "metrics": metrics,
        "thresholds": thresholds,
        "distribution": histogram(val.labels, val_scores),
        "bias": float(bias.item()),
        "train_seconds": round(train_seconds, 1),
        "wall_seconds": round(time.time() - started, 1),
        "config": {**asdict(config), "wise_alphas": list(config.wise_alphas)},
    }
    meta = {
        "name": name,
        "thresholds": thresholds,
        "category_top_k": base_meta.get("category_top_k", 0),
        "metrics": {
            "validation": metrics["validation"]["tuned"],
            "regression": metrics["regression"]["tuned"],
        },
        "distribution": report["distribution"],
        "finetuned_from": config.base,
        "wise_ft_alpha": alpha,
    }
    if base_meta.get("category_prompt_templates"):
        meta["category_prompt_templates"] = base_meta["category_prompt_templates"]
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(checkpoint_path.parent, ignore_errors=True)
    log(summary(report))
    return report


def choose_alpha(candidates: list[dict], base_regression: float, tolerance: float):
    """The WiSE-FT mix best on validation among those that keep the regression set
    within tolerance; among equals, the one nearest the base. Returns (alpha, ok):
    when no mix of the tuned weights keeps it (alpha 0 is the base itself), the
    best on validation is returned with ok False, and the run is refused."""
    tuned = [c for c in candidates if c["alpha"] > 0] or candidates
    kept = [c for c in tuned if base_regression - c["regression_roc_auc"] <= tolerance]
    best = max(kept or tuned, key=lambda c: (round(c["val_roc_auc"], 6), -c["alpha"]))
    return best["alpha"], bool(kept)


def _mid(scores: np.ndarray) -> float:
    return float(np.median(scores)) if len(scores) else 0.0


def _meta(path: Path) -> dict:
    meta = path / META_FILE
    return json.loads(meta.read_text()) if meta.exists() else {}


def _config_fingerprint(config: FinetuneConfig) -> dict:
    data = asdict(config)
    data["wise_alphas"] = list(config.wise_alphas)
    data.pop("threads")
    data.pop("device")
    return data


def summary(report: dict) -> str:
    """Before and after, in a few lines for a person."""
    m = report["metrics"]
    lines = [
        f"WiSE-FT alpha {report['wise_ft']['alpha']} (best on validation within "
        "the regression tolerance)",
        "ROC-AUC      base    tuned",
        f"validation   {m['validation']['base']['roc_auc']:.4f}  "
        f"{m['validation']['tuned']['roc_auc']:.4f}",
        f"regression   {m['regression']['base']['roc_auc']:.4f}  "
        f"{m['regression']['tuned']['roc_auc']:.4f}",
        f"trained in {report['train_seconds']:.0f} s, {report['wall_seconds']:.0f} s "
        "in all",
    ]
    if report["refusals"]:
        lines.append("REFUSED: " + " ".join(report["refusals"]))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser, *, base_required: bool) -> None:
    """Options shared by this program and the Django command over it."""
    d = FinetuneConfig(base="", output="")
    parser.add_argument("--base", required=base_required, help="model directory")
    parser.add_argument("--output", required=True, help="directory for the result")
    parser.add_argument("--train-csv", action="append", default=[], type=str)
    parser.add_argument("--val-csv", action="append", default=[], type=str)
    parser.add_argument(
        "--regression-csv",
        default="",
        help="pairs the base model handles; default: a held-out synthetic catalog",
    )
    parser.add_argument("--regression-n", type=int, default=d.regression_n)
    parser.add_argument(
        "--replay-csv",
        default="",
        help="pairs the base model learnt from, mixed into training against "
        "forgetting; default with the default regression set: synthetic catalog "
        "pairs from training seeds",
    )
    parser.add_argument(
        "--replay-n", type=int, default=d.replay_n, help="0: no default replay"
    )
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--warmup", type=float, default=d.warmup, help="share of steps")
    parser.add_argument("--loss", choices=LOSSES, default=d.loss)
    parser.add_argument("--freeze", choices=FREEZE, default=d.freeze)
    parser.add_argument(
        "--trainable-blocks",
        type=int,
        default=d.trainable_blocks,
        help="with --freeze backbone: last blocks of each tower left trainable",
    )
    parser.add_argument("--hard-negatives", type=int, default=d.hard_negatives)
    parser.add_argument(
        "--wise-alphas",
        default=",".join(str(a) for a in d.wise_alphas),
        help="comma-separated WiSE-FT mixing weights to try on validation",
    )
    parser.add_argument("--tolerance", type=float, default=d.tolerance)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--threads", type=int, default=d.threads)
    parser.add_argument("--name", default="", help="model name (default: folder)")
    parser.add_argument(
        "--resume", action="store_true", help="continue an unfinished run"
    )


def config_from(options: dict, base: str) -> FinetuneConfig:
    """A FinetuneConfig from parsed options (argparse or a Django command's)."""
    try:
        alphas = tuple(float(a) for a in str(options["wise_alphas"]).split(","))
    except ValueError as exc:
        raise FinetuneError(f"--wise-alphas: {exc}") from exc
    return FinetuneConfig(
        base=base,
        output=str(options["output"]),
        train_csv=list(options["train_csv"]),
        val_csv=list(options["val_csv"]),
        regression_csv=options["regression_csv"],
        regression_n=options["regression_n"],
        replay_csv=options["replay_csv"],
        replay_n=options["replay_n"],
        epochs=options["epochs"],
        batch_size=options["batch_size"],
        lr=options["lr"],
        weight_decay=options["weight_decay"],
        warmup=options["warmup"],
        loss=options["loss"],
        freeze=options["freeze"],
        trainable_blocks=options["trainable_blocks"],
        hard_negatives=options["hard_negatives"],
        wise_alphas=alphas,
        tolerance=options["tolerance"],
        device=options["device"],
        seed=options["seed"],
        threads=options["threads"],
        name=options["name"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, base_required=True)
    options = vars(parser.parse_args(argv))
    try:
        report = finetune(
            config_from(options, options["base"]), resume=options["resume"]
        )
    except FinetuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if report["accepted"] else 1


if __name__ == "__main__":
    sys.exit(main())
