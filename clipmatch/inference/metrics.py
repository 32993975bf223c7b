"""Metrics for labelled image-text pairs (1 = the text matches the image)."""

from __future__ import annotations

import math

import numpy as np


def binary_metrics(labels: list[int], scores: list[float], threshold: float) -> dict:
    """ROC-AUC, PR-AUC and the confusion figures for "match" at a threshold.

    A pair is predicted to match when its similarity is at or above the threshold;
    precision, recall and F1 are those of the matching class.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    both = len(set(y.tolist())) == 2
    predicted = s >= threshold
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))
    tn = int(np.sum(~predicted & (y == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": int(len(y)),
        "roc_auc": float(roc_auc_score(y, s)) if both else math.nan,
        "pr_auc": float(average_precision_score(y, s)) if both else math.nan,
        "threshold": float(threshold),
        "accuracy": (tp + tn) / len(y) if len(y) else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }
