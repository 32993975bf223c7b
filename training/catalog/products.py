"""The catalog's products: eight categories, eight colours, four patterns."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from PIL import Image

CATEGORIES: tuple[str, ...] = (
    "sneaker",
    "handbag",
    "mug",
    "t-shirt",
    "lamp",
    "chair",
    "watch",
    "bottle",
)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 32, 38),
    "orange": (245, 128, 20),
    "yellow": (242, 208, 24),
    "green": (38, 150, 60),
    "blue": (30, 82, 214),
    "purple": (124, 52, 176),
    "pink": (242, 112, 180),
    "black": (28, 28, 30),
}

PATTERNS: tuple[str, ...] = ("plain", "striped", "dotted", "checked")

ATTRIBUTES: tuple[str, ...] = ("category", "colour", "pattern")

# Seeds below TRAIN_SEED_LIMIT are for training; the other two are reserved so the
# evaluation and threshold calibration never see an item the model trained on.
TRAIN_SEED_LIMIT = 1_000_000
HELDOUT_SEED = 1_000_000
CALIBRATION_SEED = 2_000_000


@dataclass(frozen=True)
class Product:
    """A catalog product: one category, one colour and one pattern."""

    category: str
    colour: str
    pattern: str

    @property
    def name(self) -> str:
        """Canonical short name, e.g. ``'red striped mug'``."""
        return f"{self.colour} {self.pattern} {self.category}"


@dataclass(frozen=True)
class CatalogItem:
    """A generated listing: the product, its photo, title and description."""

    product: Product
    image: Image.Image
    title: str
    description: str


def pick(rng: random.Random, seq: Sequence):
    """Choose from ``seq`` using exactly one ``rng.random()`` draw."""
    return seq[min(int(rng.random() * len(seq)), len(seq) - 1)]


def all_products() -> list[Product]:
    """Every category/colour/pattern combination, in a fixed order."""
    return [Product(c, col, p) for c in CATEGORIES for col in COLOURS for p in PATTERNS]


def random_product(rng: random.Random) -> Product:
    """A uniformly random product."""
    return Product(pick(rng, CATEGORIES), pick(rng, list(COLOURS)), pick(rng, PATTERNS))


def swap_attribute(product: Product, attribute: str, rng: random.Random) -> Product:
    """Return ``product`` with ``attribute`` replaced by a different random value."""
    choices = {"category": CATEGORIES, "colour": tuple(COLOURS), "pattern": PATTERNS}
    if attribute not in choices:
        raise ValueError(f"unknown attribute {attribute!r}; use one of {ATTRIBUTES}")
    current = getattr(product, attribute)
    others = [v for v in choices[attribute] if v != current]
    return replace(product, **{attribute: pick(rng, others)})
