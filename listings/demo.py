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
# Planted after the catalog is scored: a photo lifted from another seller's
# listing, and photos too poor to judge.
PHOTO_KINDS = ("reused_photo", "unusable_photo")
DEMO_SELLER = "demo-seller"
DEMO_OTHER_SELLER = "demo-other-seller"


@dataclass(frozen=True)
class DemoListing:
    """A seeded listing and what was planted in it."""

    listing_id: int
    kind: str

    @property
    def planted(self) -> bool:
        """A planted mismatch of the photos and the words."""
        return self.kind in KINDS[1:]


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


def _lifted(data: bytes, rng: random.Random) -> bytes:
    """Another seller's photo as a thief re-posts it: cropped a little, brighter or
    darker, re-encoded as a JPEG."""
    from PIL import Image, ImageEnhance

    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size
    left, top = round(w * rng.uniform(0, 0.05)), round(h * rng.uniform(0, 0.05))
    image = image.crop((left, top, w - round(w * rng.uniform(0, 0.05)), h))
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.9, 1.1))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _unusable(product, n: int, rng: random.Random) -> bytes:
    """A photo of the product too small, too dark, blurred or nearly blank."""
    from PIL import Image, ImageEnhance, ImageFilter

    from training import catalog

    photo = catalog.render_product(product, size=384, rng=rng)
    kind = n % 4
    if kind == 0:
        photo = photo.resize((96, 96))
    elif kind == 1:
        photo = ImageEnhance.Brightness(photo).enhance(0.12)
    elif kind == 2:
        photo = photo.filter(ImageFilter.GaussianBlur(8))
    else:
        photo = Image.new("RGB", photo.size, (236, 236, 234))
    return _png(photo)


def demo_plant_photos(
    seeded: list[DemoListing], *, reused: int, unusable: int, seed: int
) -> list[DemoListing]:
    """New listings by another seller with a photo lifted from `reused` of the
    seeded (scored) listings, and `unusable` with photos too poor to judge."""
    from training import catalog

    rng = random.Random(f"demo-photos-{seed}")
    thief, _ = get_user_model().objects.get_or_create(username=DEMO_OTHER_SELLER)
    categories = categories_ensure(catalog.CATEGORIES)
    sources = Listing.objects.filter(
        pk__in=[s.listing_id for s in seeded]
    ).prefetch_related("images")
    sources = [listing for listing in sources if listing.images.all()]
    planted = []
    for listing in rng.sample(sources, min(reused, len(sources))):
        image = listing.images.all()[0]
        with image.image.open("rb") as fh:
            data = fh.read()
        copy = listing_create(
            seller=thief,
            title=listing.title,
            description=listing.description,
            category=listing.category,
            price=listing.price,
            images=[("photo-1.jpg", _lifted(data, rng))],
        )
        planted.append(DemoListing(copy.pk, "reused_photo"))
    for n in range(unusable):
        product = catalog.random_product(rng)
        poor = listing_create(
            seller=thief,
            title=catalog.product_title(product, rng),
            description=catalog.product_description(product, rng),
            category=categories[product.category],
            price=Decimal(rng.randrange(500, 25000)) / 100,
            images=[("photo-1.png", _unusable(product, n, rng))],
        )
        planted.append(DemoListing(poor.pk, "unusable_photo"))
    return planted


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
        "planted_reused": 0,
        "reused_caught": 0,
        "planted_unusable": 0,
        "unusable_caught": 0,
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
        evidence = score.images if score is not None else []
        if item.planted:
            summary["planted_mismatches"] += 1
            summary["caught"] += int(flagged)
        elif item.kind == "reused_photo":
            summary["planted_reused"] += 1
            summary["reused_caught"] += int(any(row.get("reuse") for row in evidence))
        elif item.kind == "unusable_photo":
            summary["planted_unusable"] += 1
            summary["unusable_caught"] += int(
                any(row.get("quality") for row in evidence)
            )
        else:
            summary["honest_flagged"] += int(flagged)
    return summary
