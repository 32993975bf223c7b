"""One run end to end: check, load, measure the base, train, mix, gate, save."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clipmatch.inference.engine import pick_device
from clipmatch.inference.sources import META_FILE, ModelLoadError
from training.finetune import loop
from training.finetune.data import PairSet, RunData, load_run_data, prepare
from training.finetune.loop import CHECKPOINT, Tuner
from training.finetune.model import freeze, load_model, read_meta, snapshot
from training.finetune.params import FinetuneConfig, FinetuneError
from training.finetune.report import (
    Scores,
    compare,
    histogram,
    propose_thresholds,
    refusals,
    roc_auc,
    summary,
    write_reports,
)


@dataclass
class Loaded:
    """A run's inputs, loaded: the pairs, the base model and what it scored."""

    data: RunData
    engine: object  # the base model as the app loads it; tuned in place
    train: PairSet
    val: PairSet
    regression: PairSet
    base_meta: dict
    base_state: dict  # the base's weights, for WiSE-FT
    base: Scores


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

    config.check()
    started = time.time()
    torch.set_num_threads(max(1, config.threads))
    device = _device(config.device)
    out = Path(config.output)
    _check_output(config, out, resume)
    run = _load(config, device, log)

    torch.manual_seed(config.seed)
    trainable = freeze(run.engine.model, config.freeze, config.trainable_blocks)
    tuner = loop.start_tuning(run.engine, run.train, config)
    if resume and (out / CHECKPOINT).exists():
        loop.load_checkpoint(tuner, out, config.fingerprint())
        log(f"resumed from {out / CHECKPOINT} after epoch {tuner.state.epoch}")
    else:
        loop.start_bias_at(tuner, run.base.val)
    train_started = time.time()
    loop.train(
        tuner,
        run.train,
        run.val,
        config,
        out,
        progress=progress,
        on_epoch_end=on_epoch_end,
        log=log,
    )
    train_seconds = time.time() - train_started

    report = _finish(config, out, run, tuner, trainable, train_seconds, started)
    log(summary(report))
    return report


def _device(name: str) -> str:
    try:
        return pick_device(name)
    except ModelLoadError as exc:
        raise FinetuneError(f"--device: {exc}") from exc


def _check_output(config: FinetuneConfig, out: Path, resume: bool) -> None:
    """Refuse a run without data, or one that would overwrite another's output."""
    if not config.train_csv:
        raise FinetuneError("No training data: give at least one training CSV.")
    if not config.val_csv:
        raise FinetuneError("No validation data: give a validation CSV.")
    checkpoint = out / CHECKPOINT
    if checkpoint.exists() and not resume:
        raise FinetuneError(
            f"{out} holds an unfinished run; resume it (--resume) or pick another "
            "--output."
        )
    if (out / META_FILE).exists() and not checkpoint.exists():
        raise FinetuneError(f"{out} already holds a model; pick another --output.")


def _load(config: FinetuneConfig, device: str, log: Callable[[str], None]) -> Loaded:
    """Every image read and preprocessed, and the base scored on validation and
    regression before any training."""
    data = load_run_data(config)
    engine = load_model(config.base, device)
    base_meta = read_meta(config.base)
    train = prepare(data.train + data.replay, engine)
    val = prepare(data.val, engine)
    regression = prepare(data.regression, engine)
    log(
        f"{len(data.train)} training pairs ({train.n_images} images), "
        f"{len(data.val)} validation, {len(data.regression)} regression; "
        f"device {device}"
    )
    base_state = snapshot(engine.model)
    base = loop.score(engine, val, regression)
    return Loaded(data, engine, train, val, regression, base_meta, base_state, base)


def _finish(
    config: FinetuneConfig,
    out: Path,
    run: Loaded,
    tuner: Tuner,
    trainable: int,
    train_seconds: float,
    started: float,
) -> dict:
    """Choose the WiSE-FT mix, measure it against the base, save it and its
    report (refused or not), and drop the checkpoint."""
    val, regression = run.val, run.regression
    base_regression_auc = roc_auc(regression.labels, run.base.regression)
    alpha, candidates = loop.wise_ft(
        tuner, run.base_state, base_regression_auc, val, regression, config
    )
    tuned = loop.score(tuner.engine, val, regression)
    thresholds = propose_thresholds(val.labels, tuned.val)
    base_thresholds = run.base_meta.get("thresholds") or thresholds
    metrics = compare(
        val.labels,
        regression.labels,
        run.base,
        tuned,
        base_cut=base_thresholds["title"]["pass"],
        cut=thresholds["title"]["pass"],
    )
    out.mkdir(parents=True, exist_ok=True)
    tuner.model.save_pretrained(out, safe_serialization=True)
    run.engine.processor.save_pretrained(out)
    refused = refusals(metrics, config.tolerance)
    report = {
        "name": config.name or out.name,
        "accepted": not refused,
        "refusals": refused,
        "base": config.base,
        "device": tuner.device,
        "data": _data_report(config, run),
        "trainable_parameters": trainable,
        "wise_ft": {"candidates": candidates, "alpha": alpha},
        "history": tuner.state.history,
        "metrics": metrics,
        "thresholds": thresholds,
        "distribution": histogram(val.labels, tuned.val),
        "bias": float(tuner.bias.item()),
        "train_seconds": round(train_seconds, 1),
        "wall_seconds": round(time.time() - started, 1),
        "config": config.as_dict(),
    }
    write_reports(out, report, run.base_meta)
    shutil.rmtree((out / CHECKPOINT).parent, ignore_errors=True)
    return report


def _data_report(config: FinetuneConfig, run: Loaded) -> dict:
    data = run.data
    return {
        "train_pairs": len(data.train),
        "train_images": run.train.n_images,
        "replay_pairs": len(data.replay),
        "replay_csv": data.replay_csv,
        "mined_negatives_per_epoch": config.hard_negatives * sum(run.train.labels),
        "val_pairs": len(data.val),
        "regression_pairs": len(data.regression),
        "regression_csv": data.regression_csv,
    }
