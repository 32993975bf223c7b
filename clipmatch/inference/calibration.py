"""Thresholds from moderators' decisions: pure functions on scores and labels.

A listing scoring below `hold` is held; the share of held listings that moderators
rejected as mismatches is the hold's precision on mismatches, and the proposal
takes the highest hold that reaches the target (catching the most mismatches). A
listing at or above `pass` is published unseen; `pass` is the lowest cut whose
passed listings are matches at the pass target. In between: review.

"Reaches" is judged conservatively, by the lower end of a one-sided 95% Wilson
interval of the precision rather than the precision seen: the cut that just meets
the target on the decisions it was chosen from would miss it on new decisions
about half of the time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FIELDS = ("title", "description")
Z = 1.645  # one-sided 95%


def wilson_lower(successes: int, n: int, z: float = Z) -> float:
    """Lower bound of the Wilson score interval of a proportion."""
    if n == 0:
        return 0.0
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float((centre - spread) / (1 + z * z / n))


def hold_cut(scores: np.ndarray, labels: np.ndarray, target: float) -> float | None:
    """The highest cut whose held set (scores below it) is at least `target`
    mismatches; None when no cut holds anything at that precision."""
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order]
    mismatches = np.cumsum(y == 0)
    best = None
    for k in range(1, len(s) + 1):
        # Holding the k lowest needs a cut above s[k-1] and at most s[k].
        if k < len(s) and s[k] == s[k - 1]:
            continue
        if wilson_lower(int(mismatches[k - 1]), k) >= target:
            best = float(s[k]) if k < len(s) else float(s[-1]) + 1e-6
    return best


def pass_cut(scores: np.ndarray, labels: np.ndarray, target: float) -> float | None:
    """The lowest cut whose passed set (scores at or above it) is at least
    `target` matches; None when none is."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    matches = np.cumsum(y == 1)
    best = None
    for k in range(1, len(s) + 1):
        if k < len(s) and s[k] == s[k - 1]:
            continue
        if wilson_lower(int(matches[k - 1]), k) >= target:
            best = float(s[k - 1])
    return best


def rates(scores: np.ndarray, labels: np.ndarray, hold: float, pass_: float) -> dict:
    """How a pair of cuts sorts labelled scores: held, review and passed figures."""
    held = scores < hold
    passed = scores >= pass_
    mismatch = labels == 0
    n_held, n_passed = int(held.sum()), int(passed.sum())
    return {
        "n": int(len(scores)),
        "mismatches": int(mismatch.sum()),
        "held": n_held,
        "review": int(len(scores) - n_held - n_passed),
        "passed": n_passed,
        "hold_precision": float((held & mismatch).sum() / n_held) if n_held else None,
        "hold_recall": (
            float((held & mismatch).sum() / mismatch.sum()) if mismatch.any() else None
        ),
        "pass_precision": (
            float((passed & ~mismatch).sum() / n_passed) if n_passed else None
        ),
        "mismatches_passed": int((passed & mismatch).sum()),
    }


def propose(
    scores: Sequence[float],
    labels: Sequence[int],
    *,
    target: float,
    pass_target: float,
) -> dict:
    """Cuts for one field and the figures they came from."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=int)
    hold = hold_cut(s, y, target)
    pass_ = pass_cut(s, y, pass_target)
    notes = []
    if hold is None:
        hold = float(s.min()) if len(s) else 0.0
        notes.append(
            f"No cut holds listings at {target:.0%} mismatch precision: hold "
            "is set below every score, so nothing is held."
        )
    if pass_ is None:
        pass_ = float(s.max()) + 1e-6 if len(s) else 1.0
        notes.append(
            f"No cut passes listings at {pass_target:.0%} precision: every listing "
            "goes to review or is held."
        )
    pass_ = max(pass_, hold)
    return {
        "pass": pass_,
        "hold": hold,
        "fit": rates(s, y, hold, pass_),
        "notes": notes,
    }
