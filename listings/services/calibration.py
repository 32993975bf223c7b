"""Thresholds proposed from moderators' decisions, with figures on decisions the
proposal never saw."""

from __future__ import annotations

from clipmatch.inference.scoring import FIELDS
from clipmatch.models import ThresholdVersion
from clipmatch.services import model_version_active, threshold_version_propose
from listings.models import ListingScore
from listings.services.exceptions import CalibrationError


def _field_scores(score: ListingScore) -> dict[str, float | None]:
    """A listing's worst similarity per field, as routing saw it."""
    result: dict[str, float | None] = {}
    for name in FIELDS:
        values = [i[name] for i in score.images if i.get(name) is not None]
        result[name] = min(values) if values else None
    return result


def _judged(rows, thresholds: dict, fields: list[str]) -> dict:
    """How cuts sort decided listings, each by its own category's cuts: held when
    any of the fields is below its hold, passed when all are at or above pass."""
    held = passed = held_mismatches = passed_matches = mismatches = n = 0
    for row, scores in rows:
        cuts = thresholds["categories"].get(row.category, thresholds)
        present = [f for f in fields if scores[f] is not None]
        if not present:
            continue
        n += 1
        mismatches += row.label == 0
        if any(scores[f] < cuts[f]["hold"] for f in present):
            held += 1
            held_mismatches += row.label == 0
        elif all(scores[f] >= cuts[f]["pass"] for f in present):
            passed += 1
            passed_matches += row.label == 1
    return {
        "n": n,
        "mismatches": mismatches,
        "held": held,
        "review": n - held - passed,
        "passed": passed,
        "hold_precision": held_mismatches / held if held else None,
        "hold_recall": held_mismatches / mismatches if mismatches else None,
        "pass_precision": passed_matches / passed if passed else None,
        "mismatches_passed": passed - passed_matches,
    }


def thresholds_propose_from_decisions(
    *,
    target: float = 0.9,
    pass_target: float = 0.98,
    min_decisions: int = 30,
    holdout: float = 0.3,
) -> ThresholdVersion:
    """Propose thresholds for the active model from moderators' decisions.

    The oldest decisions choose the cuts, globally and per category where a
    category has at least `min_decisions` with both labels; the newest `holdout`
    share is kept aside to show how the cuts do on decisions they never saw.
    Nothing routes differently until a staff user applies the proposal.
    """
    from clipmatch.inference import calibration
    from listings.labels import scores_for_calibration

    active = model_version_active()
    examples = scores_for_calibration(model_version_id=active.version.pk)
    if len(examples) < 10:
        raise CalibrationError(
            f"Only {len(examples)} decided listings were scored by {active.version}; "
            "at least 10 are needed."
        )
    n_fit = len(examples) - max(1, round(len(examples) * holdout))
    fit, held_out = examples[:n_fit], examples[n_fit:]
    if {r.label for r, _ in fit} != {0, 1}:
        raise CalibrationError(
            "The decisions to calibrate on need both approvals and mismatch rejections."
        )

    def propose(rows) -> dict:
        cuts = {}
        for name in FIELDS:
            pairs = [(s[name], r.label) for r, s in rows if s[name] is not None]
            if not pairs:
                cuts[name] = {"pass": 1.0, "hold": -1.0, "fit": {"n": 0}, "notes": []}
                continue
            cuts[name] = calibration.propose(
                [p[0] for p in pairs],
                [p[1] for p in pairs],
                target=target,
                pass_target=pass_target,
            )
        return cuts

    with_fields = [(r, _field_scores(s)) for r, s in fit]
    global_cuts = propose(with_fields)
    categories = {}
    for name in sorted({r.category for r, _ in with_fields}):
        rows = [(r, s) for r, s in with_fields if r.category == name]
        if len(rows) >= min_decisions and {r.label for r, _ in rows} == {0, 1}:
            categories[name] = propose(rows)

    def plain(cuts: dict) -> dict:
        return {f: {"pass": c["pass"], "hold": c["hold"]} for f, c in cuts.items()}

    thresholds = {
        **plain(global_cuts),
        "category_top_k": active.thresholds.category_top_k,
        "categories": {name: plain(c) for name, c in categories.items()},
    }
    held_rows = [(r, _field_scores(s)) for r, s in held_out]
    held_figures = {name: _judged(held_rows, thresholds, [name]) for name in FIELDS}
    held_figures["listing"] = _judged(held_rows, thresholds, list(FIELDS))
    figures = {
        "target_precision": target,
        "pass_precision": pass_target,
        "min_decisions": min_decisions,
        "decisions": len(examples),
        "fit": {"n": len(fit), "until": fit[-1][0].decided_at.isoformat()},
        "held_out": {
            "n": len(held_out),
            "since": held_out[0][0].decided_at.isoformat(),
            "hold": held_figures,
        },
        "global": global_cuts,
        "categories": categories,
        "previous": active.thresholds.as_dict(),
    }
    return threshold_version_propose(
        version=active.version, thresholds=thresholds, figures=figures
    )
