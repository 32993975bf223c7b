"""The epoch loop: one epoch of updates, evaluation, checkpoints, WiSE-FT."""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from training.finetune.data import PairSet, batches, items_per_epoch, mine_negatives
from training.finetune.model import (
    encode_images,
    encode_texts,
    similarities,
    snapshot,
    wise_mix,
)
from training.finetune.params import FinetuneConfig, FinetuneError
from training.finetune.report import Scores, choose_alpha, roc_auc
from training.losses import balanced_bce, contrastive_loss, logit_scale
from training.optim import make_optimizer, make_scheduler, update

CHECKPOINT = "checkpoint/state.pt"  # under the output folder, removed at the end


@dataclass
class RunState:
    """What a checkpoint holds besides the weights."""

    epoch: int = 0
    step: int = 0
    history: list = field(default_factory=list)


@dataclass
class Tuner:
    """The model being tuned, with everything that updates it."""

    engine: object  # the ClipEngine whose model is tuned, and that measures it
    bias: object  # the BCE loss's learnable bias on the scaled cosine
    params: list
    optimizer: object
    scheduler: object
    device: str
    state: RunState = field(default_factory=RunState)

    @property
    def model(self):
        return self.engine.model


def start_tuning(engine, train: PairSet, config: FinetuneConfig):
    """A Tuner for the model's trainable parameters and the bias: AdamW, with
    warm-up over a share of all the steps the run will take, then cosine decay."""
    import torch

    device = engine.device
    bias = torch.nn.Parameter(torch.zeros((), device=device))
    params = [p for p in engine.model.parameters() if p.requires_grad] + [bias]
    optimizer = make_optimizer(params, config.lr, config.weight_decay)
    n_items = items_per_epoch(train, config.hard_negatives)
    total_steps = math.ceil(n_items / config.batch_size) * config.epochs
    warmup = max(1, int(config.warmup * total_steps))
    scheduler = make_scheduler(optimizer, total_steps, warmup)
    return Tuner(engine, bias, params, optimizer, scheduler, device)


def start_bias_at(tuner: Tuner, scores: np.ndarray) -> None:
    """Start the bias where the base model's scores sit: minus the temperature
    times their median, so the first BCE steps do not just shift every logit."""
    import torch

    middle = float(np.median(scores)) if len(scores) else 0.0
    with torch.no_grad():
        tuner.bias.fill_(-logit_scale(tuner.model).item() * middle)


def save_checkpoint(tuner: Tuner, out: Path, fingerprint: dict) -> None:
    import torch

    path = out / CHECKPOINT
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "config": fingerprint,
            "model": tuner.model.state_dict(),
            "bias": tuner.bias.detach(),
            "optimizer": tuner.optimizer.state_dict(),
            "scheduler": tuner.scheduler.state_dict(),
            "state": asdict(tuner.state),
        },
        path,
    )


def load_checkpoint(tuner: Tuner, out: Path, fingerprint: dict) -> None:
    """Continue from the checkpoint in ``out``, which must come from a run with
    the same settings."""
    import torch

    saved = torch.load(out / CHECKPOINT, map_location=tuner.device, weights_only=False)
    if saved["config"] != fingerprint:
        raise FinetuneError(
            f"The checkpoint in {out} was made with other settings; "
            "resume with the same ones or pick another --output."
        )
    tuner.model.load_state_dict(saved["model"])
    tuner.bias.data.copy_(saved["bias"])
    tuner.optimizer.load_state_dict(saved["optimizer"])
    tuner.scheduler.load_state_dict(saved["scheduler"])
    tuner.state = RunState(**saved["state"])


def batch_loss(tuner: Tuner, data: PairSet, batch: list, loss_kind: str):
    """The loss of one batch of (image row, text, label, text group) items: BCE on
    every item and/or the contrastive loss over its matching pairs."""
    import torch

    device = tuner.device
    rows = list(dict.fromkeys(item[0] for item in batch))
    texts = list(dict.fromkeys(item[1] for item in batch))
    img = encode_images(tuner.engine, data.image_rows(rows))
    txt = encode_texts(tuner.engine, texts)
    scale = logit_scale(tuner.model)
    row_of = {r: n for n, r in enumerate(rows)}
    col_of = {t: n for n, t in enumerate(texts)}
    i = torch.tensor([row_of[item[0]] for item in batch], device=device)
    j = torch.tensor([col_of[item[1]] for item in batch], device=device)
    labels = torch.tensor([float(item[2]) for item in batch], device=device)
    total = torch.zeros((), device=device)
    if loss_kind in ("bce", "both"):
        logits = scale * (img[i] * txt[j]).sum(-1) + tuner.bias
        total = total + balanced_bce(logits, labels == 1)
    positive = [k for k, item in enumerate(batch) if item[2] == 1]
    if loss_kind in ("contrastive", "both") and len(positive) > 1:
        # Known matches elsewhere in the batch (same component) are not negatives.
        image_groups = [data.group_of_image[batch[k][0]] for k in positive]
        text_groups = [batch[k][3] for k in positive]
        known = torch.tensor(
            [[a == b for b in text_groups] for a in image_groups], device=device
        )
        pi, pj = i[positive], j[positive]
        total = total + contrastive_loss(img[pi], txt[pj], known, scale)
    return total


def train_one_epoch(
    tuner: Tuner, data: PairSet, config: FinetuneConfig, epoch: int, progress: bool
) -> list[float]:
    """One pass over the pairs and freshly mined negatives; the batch losses.

    The epoch's randomness is seeded by (seed, epoch), so a resumed run reaches
    the same weights as one that never stopped.
    """
    import torch
    from tqdm import tqdm

    rng = random.Random(f"clipmatch-finetune-{config.seed}-{epoch}")
    torch.manual_seed(config.seed * 1000 + epoch)
    mined = mine_negatives(data, rng, config.hard_negatives)
    tuner.model.train()
    running = []
    bar = tqdm(
        batches(data, mined, config.batch_size, rng),
        desc=f"epoch {epoch + 1}/{config.epochs}",
        unit="batch",
        file=sys.stderr,
        disable=not progress,
    )
    for batch in bar:
        loss = batch_loss(tuner, data, batch, config.loss)
        if not loss.requires_grad:  # contrastive only, under two matches
            continue
        update(loss, tuner.optimizer, tuner.scheduler, tuner.params)
        tuner.state.step += 1
        running.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(running[-20:]):.3f}")
    bar.close()
    return running


def train(
    tuner: Tuner,
    train_set: PairSet,
    val: PairSet,
    config: FinetuneConfig,
    out: Path,
    *,
    progress: bool,
    on_epoch_end: Callable[[int], None] | None,
    log: Callable[[str], None],
) -> None:
    """The remaining epochs, each followed by the validation ROC-AUC and a
    checkpoint."""
    for epoch in range(tuner.state.epoch, config.epochs):
        running = train_one_epoch(tuner, train_set, config, epoch, progress)
        val_scores = similarities(tuner.engine, val)
        val_auc = roc_auc(val.labels, val_scores)
        if not running:
            raise FinetuneError(
                f"Epoch {epoch + 1} had no batch with a loss: with --loss "
                "contrastive a batch needs at least two matching pairs."
            )
        tuner.state.epoch = epoch + 1
        tuner.state.history.append(
            {
                "epoch": epoch + 1,
                "loss": float(np.mean(running)),
                "val_roc_auc": val_auc,
            }
        )
        log(
            f"epoch {epoch + 1}: loss {np.mean(running):.4f}, val ROC-AUC {val_auc:.4f}"
        )
        save_checkpoint(tuner, out, config.fingerprint())
        if on_epoch_end:
            on_epoch_end(epoch + 1)


def score(engine, val: PairSet, regression: PairSet) -> Scores:
    """Validation and regression scores, each the app's score of its pair."""
    return Scores(
        val=similarities(engine, val), regression=similarities(engine, regression)
    )


def wise_ft(
    tuner: Tuner,
    base_state: dict,
    base_regression_auc: float,
    val: PairSet,
    regression: PairSet,
    config: FinetuneConfig,
) -> tuple[float, list[dict]]:
    """Score every WiSE-FT mix of base and tuned weights, load the chosen one;
    returns its alpha and every candidate's figures."""
    model = tuner.model
    tuned_state = snapshot(model)
    candidates = []
    for alpha in config.wise_alphas:
        model.load_state_dict(wise_mix(base_state, tuned_state, alpha))
        scores = score(tuner.engine, val, regression)
        candidates.append(
            {
                "alpha": alpha,
                "val_roc_auc": roc_auc(val.labels, scores.val),
                "regression_roc_auc": roc_auc(regression.labels, scores.regression),
            }
        )
    alpha, _ = choose_alpha(candidates, base_regression_auc, config.tolerance)
    model.load_state_dict(wise_mix(base_state, tuned_state, alpha))
    return alpha, candidates
