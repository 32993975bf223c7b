"""Seeds demo listings from the synthetic catalog, some deliberately mismatched."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.utils.text import slugify

from listings.models import Category, Listing
from listings.services.lifecycle import listing_create

KINDS = ("honest", "wrong_category", "wrong_colour", "something_else")
DEMO_SELLER = "demo-seller"


@dataclass(frozen=True)
class DemoListing:
    """A seeded listing and what was planted in it."""

    listing_id: int
    kind: str

    @property
    def planted(self) -> bool:
        return self.kind != "honest"


def categories_ensure(names) -> dict[str, Category]:
    """The catalog's categories as rows, created when missing."""
    rows = {}
    for name in names:
        rows[name], _ = Category.objects.get_or_create(
            name=name, defaults={"slug": slugify(name)}
        )
    return rows


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def demo_seed(
    *, count: int, mismatch_rate: float, seed: int, size: int = 192
) -> list[DemoListing]:
    """Create `count` listings, about `mismatch_rate` of them with a planted flaw."""
    from training import catalog

    seller, _ = get_user_model().objects.get_or_create(username=DEMO_SELLER)
    categories = categories_ensure(catalog.CATEGORIES)
    rng = random.Random(seed)
    planted_kinds = KINDS[1:]
    seeded = []
    for index in range(count):
        claimed = catalog.random_product(rng)
        kind = "honest"
        if rng.random() < mismatch_rate:
            kind = planted_kinds[index % len(planted_kinds)]
        if kind == "wrong_category":
            shown = [catalog.swap_attribute(claimed, "category", rng)]
        elif kind == "wrong_colour":
            shown = [catalog.swap_attribute(claimed, "colour", rng)]
        elif kind == "something_else":
            # A real photo of the claimed product, then one of something else entirely.
            other = catalog.swap_attribute(
                catalog.swap_attribute(claimed, "category", rng), "colour", rng
            )
            shown = [claimed, other]
        else:
            shown = [claimed] * (2 if rng.random() < 0.3 else 1)
        images = [
            (f"photo-{n + 1}.png", _png(catalog.render_product(p, size=size, rng=rng)))
            for n, p in enumerate(shown)
        ]
        listing = listing_create(
            seller=seller,
            title=catalog.product_title(claimed, rng),
            description=catalog.product_description(claimed, rng),
            category=categories[claimed.category],
            price=Decimal(rng.randrange(500, 25000)) / 100,
            images=images,
        )
        seeded.append(DemoListing(listing.pk, kind))
    return seeded


def demo_summary(seeded: list[DemoListing]) -> dict:
    """Counts of where the seeded listings ended and how many plants were caught."""
    listings = Listing.objects.select_related("score").in_bulk(
        [s.listing_id for s in seeded]
    )
    scores = {pk: listing.score for pk, listing in listings.items()}
    summary = {
        "listings": len(seeded),
        "passed": 0,
        "review": 0,
        "held": 0,
        "failed": 0,
        "pending": 0,
        "audit_samples": 0,
        "planted_mismatches": 0,
        "caught": 0,
        "honest_flagged": 0,
    }
    for item in seeded:
        listing = listings[item.listing_id]
        score = scores[item.listing_id]
        if listing.status == Listing.Status.PENDING:
            summary["pending"] += 1
        elif listing.scoring_error and score is None:
            summary["failed"] += 1
        elif listing.status in (
            Listing.Status.PASSED,
            Listing.Status.REVIEW,
            Listing.Status.HELD,
        ):
            summary[listing.status] += 1
        pending = listing.status == Listing.Status.PENDING
        # Not passed by the model: a review or hold verdict, or scoring that failed.
        flagged = (score is None and not pending) or (
            score is not None and score.verdict != "pass"
        )
        if score is not None and score.audit_sample:
            summary["audit_samples"] += 1
        if item.planted:
            summary["planted_mismatches"] += 1
            summary["caught"] += int(flagged)
        else:
            summary["honest_flagged"] += int(flagged)
    return summary
