"""Pure scoring functions: similarities, zero-shot categories, bands and reasons."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PASS, REVIEW, HOLD = "pass", "review", "hold"
_SEVERITY = {PASS: 0, REVIEW: 1, HOLD: 2}
FIELDS = ("title", "description")


@dataclass(frozen=True)
class Thresholds:
    """Raw-cosine cut-offs for one model: at or above pass passes, below hold holds."""

    title_pass: float
    title_hold: float
    description_pass: float
    description_hold: float
    category_top_k: int = 0

    @classmethod
    def from_dict(cls, data: dict) -> Thresholds:
        """Build from {"title": {"pass", "hold"}, "description": {...}, ...}."""
        try:
            values = cls(
                title_pass=float(data["title"]["pass"]),
                title_hold=float(data["title"]["hold"]),
                description_pass=float(data["description"]["pass"]),
                description_hold=float(data["description"]["hold"]),
                category_top_k=int(data.get("category_top_k", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                "Thresholds need title.pass, title.hold, description.pass and "
                f"description.hold as numbers; got {data!r}"
            ) from exc
        for name in FIELDS:
            if values.cut(name, "hold") > values.cut(name, "pass"):
                raise ValueError(
                    f"The {name} hold threshold is above its pass threshold."
                )
        return values

    def as_dict(self) -> dict:
        return {
            "title": {"pass": self.title_pass, "hold": self.title_hold},
            "description": {
                "pass": self.description_pass,
                "hold": self.description_hold,
            },
            "category_top_k": self.category_top_k,
        }

    def cut(self, field_name: str, which: str) -> float:
        return getattr(self, f"{field_name}_{which}")

    def band(self, field_name: str, similarity: float) -> str:
        if similarity >= self.cut(field_name, "pass"):
            return PASS
        if similarity < self.cut(field_name, "hold"):
            return HOLD
        return REVIEW


def worst(bands: list[str]) -> str:
    """The most severe band, PASS for none."""
    return max(bands, key=_SEVERITY.__getitem__, default=PASS)


def best_chunk_similarity(image: np.ndarray, chunks: np.ndarray) -> float:
    """Cosine of a unit image vector with the best-matching window of a text."""
    return float(np.max(chunks @ image))


def ensemble(prompt_vectors: np.ndarray) -> np.ndarray:
    """One unit vector for a class from the unit vectors of its prompts."""
    mean = prompt_vectors.mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def rank_categories(
    image: np.ndarray, names: list[str], class_vectors: np.ndarray
) -> list[tuple[str, float]]:
    """All categories by cosine with the image, best first."""
    sims = class_vectors @ image
    order = np.argsort(-sims, kind="stable")
    return [(names[i], float(sims[i])) for i in order]


@dataclass
class ImageEvidence:
    """What the model saw in one image."""

    index: int
    title: float
    description: float | None
    categories: list[tuple[str, float]]
    listed_rank: int | None
    bands: dict[str, str] = field(default_factory=dict)
    category_ok: bool = True
    # Photo signals (listings.services.photos): quality finding codes, and the
    # same photo on another seller's listing, when there is one.
    quality: list[str] = field(default_factory=list)
    reuse: dict | None = None


@dataclass
class Assessment:
    """A listing's verdict with the evidence and the words that explain it."""

    verdict: str
    similarity: float
    reasons: list[str]
    images: list[ImageEvidence]

    def images_as_dicts(self, top: int = 3) -> list[dict]:
        rows = []
        for image in self.images:
            # Not asdict(): it deep-copies every category's ranking only for all
            # but the top few to be dropped (a catalog rescore makes many rows).
            row = {
                "index": image.index,
                "title": round(image.title, 4),
                "description": image.description,
                "categories": [
                    {"category": name, "similarity": round(sim, 4)}
                    for name, sim in image.categories[:top]
                ],
                "listed_rank": image.listed_rank,
                "bands": dict(image.bands),
                "category_ok": image.category_ok,
                "quality": list(image.quality),
                "reuse": dict(image.reuse) if image.reuse else None,
            }
            if image.description is not None:
                row["description"] = round(image.description, 4)
            rows.append(row)
        return rows


def assess(
    *,
    title_sims: list[float],
    description_sims: list[float | None],
    category_rankings: list[list[tuple[str, float]]],
    listed_category: str,
    thresholds: Thresholds,
) -> Assessment:
    """Route a listing from per-image similarities and category rankings."""
    if not title_sims:
        return Assessment(REVIEW, 0.0, ["The listing has no images to check."], [])
    evidence, reasons, bands = [], [], []
    many = len(title_sims) > 1
    for index, (t_sim, d_sim, ranking) in enumerate(
        zip(title_sims, description_sims, category_rankings, strict=True), start=1
    ):
        names = [name for name, _ in ranking]
        rank = names.index(listed_category) + 1 if listed_category in names else None
        item = ImageEvidence(index, t_sim, d_sim, ranking, rank)
        label = f"Image {index}" if many else "The image"
        for name, sim in (("title", t_sim), ("description", d_sim)):
            if sim is None:  # a listing without a description
                continue
            item.bands[name] = thresholds.band(name, sim)
            bands.append(item.bands[name])
            if item.bands[name] == HOLD:
                reasons.append(
                    f"{label} does not match the {name} "
                    f"(similarity {sim:.3f}, "
                    f"held below {thresholds.cut(name, 'hold'):.3f})."
                )
            elif item.bands[name] == REVIEW:
                reasons.append(
                    f"{label} matches the {name} only weakly (similarity {sim:.3f}, "
                    f"passes at {thresholds.cut(name, 'pass'):.3f})."
                )
        top_k = thresholds.category_top_k
        if top_k and ranking and (rank is None or rank > top_k):
            item.category_ok = False
            seen, seen_sim = ranking[0]
            where = (
                f"ranks {rank} of {len(ranking)}" if rank else "is not a known category"
            )
            reasons.append(
                f"{label} looks like a {seen} ({seen_sim:.3f}), listed as "
                f"{listed_category} ({listed_category} {where})."
            )
            # A wrong category alone is a question for a person, not a hold.
            bands.append(REVIEW)
        evidence.append(item)
    verdict = worst(bands)
    if verdict == PASS:
        count = len(title_sims)
        noun = "image matches" if count == 1 else f"{count} images match"
        reasons.append(
            f"{'The' if count == 1 else 'All'} {noun} the title and description."
        )
    return Assessment(verdict, min(title_sims), reasons, evidence)
