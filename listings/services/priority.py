"""How urgent a review queue item is: the chance of a mismatch, and the stored
priority that orders the queue by expected harm."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal

from clipmatch import conf
from listings.models import ListingScore

# Queue reasons that say a person must look, whatever the similarities say.
_EVEN_ODDS = {"appeal", "scoring_failed", "audit_sample", "edited_after_rejection"}


def mismatch_probability(*, score: ListingScore | None, reason: str = "") -> float:
    """How likely the listing's photos and words disagree, from its score alone.

    Each field's similarity is placed between its hold and pass thresholds: at the
    hold cut-off the estimate is 0.88, at the pass cut-off 0.12, on a logistic
    curve. The worst image and field decide. No score (scoring failed), an audit
    sample, an appeal or a wrong category count as at least even odds: a person
    must look, whatever the similarities say.
    """
    floor = 0.5 if score is None or reason in _EVEN_ODDS else 0.0
    if score is None:
        return floor
    if score.audit_sample:
        floor = 0.5
    thresholds = score.thresholds or {}
    margins = []
    for image in score.images or []:
        if not image.get("category_ok", True):
            floor = max(floor, 0.5)
        for name in ("title", "description"):
            cut = thresholds.get(name)
            sim = image.get(name)
            if sim is None or not cut:
                continue
            half = max((cut["pass"] - cut["hold"]) / 2, 1e-3)
            margins.append((sim - (cut["pass"] + cut["hold"]) / 2) / half)
    if not margins:
        return max(floor, 0.5)
    exponent = min(max(2.0 * min(margins), -60.0), 60.0)
    return max(floor, 1.0 / (1.0 + math.exp(exponent)))


def review_priority(
    *, score: ListingScore | None, price: Decimal, entered: datetime, reason: str = ""
) -> float:
    """A queue position that orders listings by expected harm now.

    Harm = P(mismatch) x exposure x e^(waiting / aging period), with exposure
    log10(10 + price): a 990 item weighs 3, a free one 1. Its log is
    ln(P x exposure) + now/T - entered/T, and now/T is the same for every row, so
    the stored constant ln(P x exposure) - entered/T sorts the queue as harm
    does at any moment, with a plain index and no arithmetic on dates in SQL.
    """
    p = max(mismatch_probability(score=score, reason=reason), 1e-6)
    exposure = math.log10(10 + float(price or 0))
    aging = conf.get("REVIEW_AGING_HOURS") * 3600
    return math.log(p * exposure) - entered.timestamp() / aging
