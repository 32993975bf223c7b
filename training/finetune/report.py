"""Measuring base and result, the WiSE-FT choice, the gate, and what is written."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipmatch.inference.metrics import binary_metrics

# The engine leaves both files out of a model version's fingerprint.
from clipmatch.inference.sources import META_FILE, REPORT_FILE
from training.finetune.params import FinetuneError

# Thresholds proposed for the result, from its validation scores (the app's
# calibrate_thresholds refines them later from moderators' decisions).
HOLD_MATCH_QUANTILE = 0.02
PASS_MISMATCH_QUANTILE = 0.95
HISTOGRAM_BINS = 40


@dataclass
class Scores:
    """Raw cosines of the validation and regression pairs under one model."""

    val: np.ndarray
    regression: np.ndarray


def measure(labels: Sequence[int], scores: np.ndarray, threshold: float) -> dict:
    return binary_metrics(list(labels), scores.tolist(), threshold)


def roc_auc(labels: Sequence[int], scores: np.ndarray) -> float:
    return measure(labels, scores, 0.0)["roc_auc"]


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


def choose_alpha(candidates: list[dict], base_regression: float, tolerance: float):
    """The WiSE-FT mix best on validation among those that keep the regression set
    within tolerance; among equals, the one nearest the base. Returns (alpha, ok):
    when no mix of the tuned weights keeps it (alpha 0 is the base itself), the
    best on validation is returned with ok False, and the run is refused."""
    tuned = [c for c in candidates if c["alpha"] > 0] or candidates
    kept = [c for c in tuned if base_regression - c["regression_roc_auc"] <= tolerance]
    best = max(kept or tuned, key=lambda c: (round(c["val_roc_auc"], 6), -c["alpha"]))
    return best["alpha"], bool(kept)


def compare(
    val_labels: Sequence[int],
    regression_labels: Sequence[int],
    base: Scores,
    tuned: Scores,
    base_cut: float,
    cut: float,
) -> dict:
    """Base and result on validation and regression, each at its own pass cut."""
    return {
        "validation": {
            "base": measure(val_labels, base.val, base_cut),
            "tuned": measure(val_labels, tuned.val, cut),
        },
        "regression": {
            "base": measure(regression_labels, base.regression, base_cut),
            "tuned": measure(regression_labels, tuned.regression, cut),
        },
    }


def refusals(metrics: dict, tolerance: float) -> list[str]:
    """Why the result is refused: each split whose ROC-AUC fell beyond tolerance."""
    found = []
    for split, figures in metrics.items():
        drop = figures["base"]["roc_auc"] - figures["tuned"]["roc_auc"]
        if drop > tolerance:
            found.append(
                f"{split} ROC-AUC fell from {figures['base']['roc_auc']:.4f} to "
                f"{figures['tuned']['roc_auc']:.4f} (by {drop:.4f}, tolerance "
                f"{tolerance:.4f})."
            )
    return found


def model_meta(report: dict, base_meta: dict) -> dict:
    """The result's clipmatch.json: what the app reads, the base's prompts kept."""
    meta = {
        "name": report["name"],
        "thresholds": report["thresholds"],
        "category_top_k": base_meta.get("category_top_k", 0),
        "metrics": {
            "validation": report["metrics"]["validation"]["tuned"],
            "regression": report["metrics"]["regression"]["tuned"],
        },
        "distribution": report["distribution"],
        "finetuned_from": report["base"],
        "wise_ft_alpha": report["wise_ft"]["alpha"],
    }
    if base_meta.get("category_prompt_templates"):
        meta["category_prompt_templates"] = base_meta["category_prompt_templates"]
    return meta


def write_reports(out: Path, report: dict, base_meta: dict) -> None:
    """clipmatch.json and the report, beside the saved weights in ``out``."""
    (out / META_FILE).write_text(
        json.dumps(model_meta(report, base_meta), indent=2) + "\n"
    )
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")


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
