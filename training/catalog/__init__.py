"""Synthetic product catalog: Pillow-drawn product photos with listing titles/texts.

Everything here is deterministic for a given ``random.Random`` state and depends on
Pillow only, so the Django app can import it to draw demo listing photos.

Text generators draw their random numbers in a fixed order that does not depend on
the product, so ``product_title(p, Random(s))`` and ``product_title(q, Random(s))``
differ only in the words for the attributes in which ``p`` and ``q`` differ.  The
training code relies on this to build minimal-pair hard negatives.
"""

from __future__ import annotations

import csv
import hashlib
import random
from pathlib import Path

from training.catalog.photos import render_product
from training.catalog.products import (
    ATTRIBUTES,
    CALIBRATION_SEED,
    CATEGORIES,
    COLOURS,
    HELDOUT_SEED,
    PATTERNS,
    TRAIN_SEED_LIMIT,
    CatalogItem,
    Product,
    all_products,
    pick,
    random_product,
    swap_attribute,
)
from training.catalog.texts import product_description, product_title

__all__ = [
    "ATTRIBUTES",
    "CATEGORIES",
    "CALIBRATION_SEED",
    "COLOURS",
    "HELDOUT_SEED",
    "PATTERNS",
    "TRAIN_SEED_LIMIT",
    "CatalogItem",
    "Product",
    "all_products",
    "generate_catalog",
    "generate_item",
    "product_description",
    "product_title",
    "random_product",
    "render_product",
    "source_fingerprint",
    "swap_attribute",
    "text_rng",
    "write_catalog_csv",
]


def source_fingerprint() -> str:
    """A hash of how products are drawn and described, for caches of rendered data."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def text_rng(index: int, *, seed: int) -> random.Random:
    """The fresh rng ``generate_item`` uses for the texts of item ``index``."""
    return random.Random(f"clipmatch-text-{seed}-{index}")


def generate_item(index: int, *, seed: int, size: int = 64) -> CatalogItem:
    """The ``index``-th catalog item for ``seed``, independent of the other items."""
    # String seeds hash through SHA-512, so neighbouring (seed, index) pairs give
    # unrelated streams and generation does not depend on PYTHONHASHSEED.  Texts get
    # their own stream so a swapped product can be described in identical wording:
    # ``product_title(swapped, text_rng(index, seed=seed))``.
    rng = random.Random(f"clipmatch-{seed}-{index}")
    product = random_product(rng)
    image = render_product(product, size=size, rng=rng)
    texts = text_rng(index, seed=seed)
    title = product_title(product, texts)
    description = product_description(product, texts)
    return CatalogItem(product, image, title, description)


def generate_catalog(n: int, *, seed: int, size: int = 64) -> list[CatalogItem]:
    """``n`` catalog items, deterministic for ``seed``."""
    return [generate_item(i, seed=seed, size=size) for i in range(n)]


def write_catalog_csv(
    out_dir: str | Path,
    *,
    n: int,
    seed: int = HELDOUT_SEED,
    size: int = 128,
    mismatch_rate: float = 0.5,
    text_kind: str = "mixed",
) -> Path:
    """Write ``n`` PNGs plus ``catalog.csv`` (image_path,text,label); return its path.

    Row ``i`` shows ``generate_item(i, seed=seed, size=size)``.  ``label`` is 1 when
    the text is that item's own title or description and 0 when it describes the
    product with one attribute swapped (3 in 4 mismatches) or another product, in
    the same wording.  ``text_kind`` is ``"title"``, ``"description"`` or
    ``"mixed"``.  Keep ``seed >= TRAIN_SEED_LIMIT`` for photos the bundled model
    never trained on.
    """
    if text_kind not in ("title", "description", "mixed"):
        raise ValueError("text_kind must be 'title', 'description' or 'mixed'")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    csv_path = out / "catalog.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_path", "text", "label"])
        for i in range(n):
            item = generate_item(i, seed=seed, size=size)
            rel = f"images/{i:06d}.png"
            item.image.save(out / rel)
            rng = random.Random(f"clipmatch-csv-{seed}-{i}")
            described = item.product
            if rng.random() < mismatch_rate:
                if rng.random() < 0.75:
                    attribute = pick(rng, ATTRIBUTES)
                    described = swap_attribute(item.product, attribute, rng)
                else:
                    while described == item.product:
                        described = random_product(rng)
            use_title = {"title": True, "description": False}.get(
                text_kind, rng.random() < 0.5
            )
            texts = text_rng(i, seed=seed)
            title = product_title(described, texts)
            text = title if use_title else product_description(described, texts)
            writer.writerow([rel, text, int(described == item.product)])
    return csv_path
