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
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

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
    "swap_attribute",
    "text_rng",
    "write_catalog_csv",
]

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


def _pick(rng: random.Random, seq: Sequence):
    """Choose from ``seq`` using exactly one ``rng.random()`` draw."""
    return seq[min(int(rng.random() * len(seq)), len(seq) - 1)]


def all_products() -> list[Product]:
    """Every category/colour/pattern combination, in a fixed order."""
    return [Product(c, col, p) for c in CATEGORIES for col in COLOURS for p in PATTERNS]


def random_product(rng: random.Random) -> Product:
    """A uniformly random product."""
    return Product(
        _pick(rng, CATEGORIES), _pick(rng, list(COLOURS)), _pick(rng, PATTERNS)
    )


def swap_attribute(product: Product, attribute: str, rng: random.Random) -> Product:
    """Return ``product`` with ``attribute`` replaced by a different random value."""
    choices = {"category": CATEGORIES, "colour": tuple(COLOURS), "pattern": PATTERNS}
    if attribute not in choices:
        raise ValueError(f"unknown attribute {attribute!r}; use one of {ATTRIBUTES}")
    current = getattr(product, attribute)
    others = [v for v in choices[attribute] if v != current]
    return replace(product, **{attribute: _pick(rng, others)})


# --------------------------------------------------------------------------- images

_Box = tuple[float, float, float, float]
_DIAL = (238, 236, 228)
_METAL = (88, 88, 94)
_SOLE = (236, 234, 228)

# Width/height ratio of each category's bounding box; silhouettes are kept very
# different (wide, square, tall, narrow) so a tiny ViT can tell them apart.
_ASPECT = {
    "sneaker": 1.0 / 0.55,
    "handbag": 1.0 / 0.95,
    "mug": 1.0 / 0.85,
    "t-shirt": 1.0 / 0.95,
    "lamp": 0.72,
    "chair": 0.66,
    "watch": 0.42,
    "bottle": 0.38,
}


# Pose variation of the product in the photo: extent of its longer side as a share
# of the image, maximum rotation in degrees, and how much of the free space around
# it the random position may use.
_EXTENT = (0.68, 0.84)
_MAX_ROTATION = 6.0
_POSITION_SPREAD = 0.4


def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, round(c * factor))) for c in rgb)


def _secondary(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Colour of pattern marks: light on dark products, dark on light ones."""
    lum = (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255
    if lum > 0.55:
        return _shade(rgb, 0.32)
    return tuple(round(c + (255 - c) * 0.88) for c in rgb)


class _Shape:
    """Draws one category into a mask (silhouette) and a detail layer."""

    def __init__(self, w: int, h: int):
        self.w, self.h = w, h
        self.mask = Image.new("L", (w, h), 0)
        self.md = ImageDraw.Draw(self.mask)
        self.details: list[Callable[[ImageDraw.ImageDraw], None]] = []

    def p(self, x: float, y: float) -> tuple[float, float]:
        return (x * self.w, y * self.h)

    def box(self, x0: float, y0: float, x1: float, y1: float) -> _Box:
        return (x0 * self.w, y0 * self.h, x1 * self.w, y1 * self.h)

    def poly(self, pts: Sequence[tuple[float, float]]) -> None:
        self.md.polygon([self.p(x, y) for x, y in pts], fill=255)

    def rect(self, x0: float, y0: float, x1: float, y1: float, r: float = 0) -> None:
        self.md.rounded_rectangle(self.box(x0, y0, x1, y1), radius=r, fill=255)


def _draw_sneaker(s: _Shape, base: tuple[int, int, int]) -> None:
    s.poly(
        [
            (0.03, 0.82),
            (0.04, 0.34),
            (0.12, 0.10),
            (0.30, 0.04),
            (0.40, 0.30),
            (0.62, 0.40),
            (0.86, 0.52),
            (0.98, 0.66),
            (0.98, 0.82),
        ]
    )
    s.rect(0.0, 0.74, 1.0, 1.0, r=0.12 * s.h)
    lw = max(1, round(0.035 * s.h))

    def details(d: ImageDraw.ImageDraw) -> None:
        d.rounded_rectangle(
            s.box(0.0, 0.78, 1.0, 1.0),
            radius=0.1 * s.h,
            fill=_SOLE,
            outline=_METAL,
            width=lw,
        )
        for i in range(3):
            x = 0.36 + 0.08 * i
            y = 0.30 + 0.06 * i
            d.line(
                [s.p(x - 0.04, y + 0.04), s.p(x + 0.05, y - 0.06)],
                fill=_SOLE,
                width=2 * lw,
            )

    s.details.append(details)


def _draw_handbag(s: _Shape, base: tuple[int, int, int]) -> None:
    s.poly([(0.14, 0.40), (0.86, 0.40), (1.0, 1.0), (0.0, 1.0)])
    s.md.arc(
        s.box(0.24, 0.0, 0.76, 0.82),
        180,
        360,
        fill=255,
        width=max(2, round(0.08 * s.w)),
    )
    lw = max(1, round(0.02 * s.h))

    def details(d: ImageDraw.ImageDraw) -> None:
        d.line([s.p(0.09, 0.58), s.p(0.91, 0.58)], fill=_shade(base, 0.6), width=lw)
        d.rectangle(s.box(0.44, 0.54, 0.56, 0.66), fill=_METAL)

    s.details.append(details)


def _draw_mug(s: _Shape, base: tuple[int, int, int]) -> None:
    s.md.ellipse(
        s.box(0.50, 0.18, 1.0, 0.80), outline=255, width=max(2, round(0.11 * s.w))
    )
    s.rect(0.0, 0.0, 0.74, 1.0, r=0.08 * s.w)
    lw = max(1, round(0.025 * s.h))

    def details(d: ImageDraw.ImageDraw) -> None:
        d.line([s.p(0.02, 0.06), s.p(0.72, 0.06)], fill=_shade(base, 0.6), width=lw)

    s.details.append(details)


def _draw_tshirt(s: _Shape, base: tuple[int, int, int]) -> None:
    s.poly(
        [
            (0.36, 0.0),
            (0.50, 0.09),
            (0.64, 0.0),
            (1.0, 0.16),
            (0.89, 0.44),
            (0.76, 0.38),
            (0.77, 1.0),
            (0.23, 1.0),
            (0.24, 0.38),
            (0.11, 0.44),
            (0.0, 0.16),
        ]
    )
    lw = max(1, round(0.03 * s.h))

    def details(d: ImageDraw.ImageDraw) -> None:
        d.arc(s.box(0.36, -0.09, 0.64, 0.11), 0, 180, fill=_shade(base, 0.55), width=lw)

    s.details.append(details)


def _draw_lamp(s: _Shape, base: tuple[int, int, int]) -> None:
    s.poly([(0.24, 0.0), (0.76, 0.0), (1.0, 0.46), (0.0, 0.46)])

    def details(d: ImageDraw.ImageDraw) -> None:
        d.rectangle(s.box(0.45, 0.46, 0.55, 0.90), fill=_METAL)
        d.ellipse(s.box(0.18, 0.86, 0.82, 1.0), fill=_METAL)

    s.details.append(details)


def _draw_chair(s: _Shape, base: tuple[int, int, int]) -> None:
    s.rect(0.08, 0.0, 0.92, 0.46, r=0.1 * s.w)
    s.rect(0.08, 0.40, 0.20, 1.0)
    s.rect(0.80, 0.40, 0.92, 1.0)
    s.rect(0.0, 0.52, 1.0, 0.64, r=0.03 * s.w)
    s.rect(0.02, 0.60, 0.13, 1.0)
    s.rect(0.87, 0.60, 0.98, 1.0)


def _draw_watch(s: _Shape, base: tuple[int, int, int]) -> None:
    s.rect(0.18, 0.0, 0.82, 1.0, r=0.15 * s.w)
    r = 0.5 * s.w
    cx, cy = 0.5 * s.w, 0.5 * s.h
    s.md.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)

    def details(d: ImageDraw.ImageDraw) -> None:
        ri = 0.78 * r
        d.ellipse(
            (cx - ri, cy - ri, cx + ri, cy + ri),
            fill=_DIAL,
            outline=_METAL,
            width=max(1, round(0.08 * r)),
        )
        lw = max(1, round(0.1 * r))
        d.line([(cx, cy), (cx, cy - 0.6 * ri)], fill=(30, 30, 30), width=lw)
        d.line([(cx, cy), (cx + 0.45 * ri, cy + 0.2 * ri)], fill=(30, 30, 30), width=lw)

    s.details.append(details)


def _draw_bottle(s: _Shape, base: tuple[int, int, int]) -> None:
    s.rect(0.0, 0.30, 1.0, 1.0, r=0.18 * s.w)
    s.poly([(0.0, 0.40), (0.26, 0.16), (0.74, 0.16), (1.0, 0.40)])
    s.rect(0.28, 0.05, 0.72, 0.20)

    def details(d: ImageDraw.ImageDraw) -> None:
        d.rounded_rectangle(
            s.box(0.22, 0.0, 0.78, 0.10), radius=0.05 * s.w, fill=_shade(base, 0.55)
        )

    s.details.append(details)


_DRAWERS = {
    "sneaker": _draw_sneaker,
    "handbag": _draw_handbag,
    "mug": _draw_mug,
    "t-shirt": _draw_tshirt,
    "lamp": _draw_lamp,
    "chair": _draw_chair,
    "watch": _draw_watch,
    "bottle": _draw_bottle,
}


def _pattern_fill(
    pattern: str,
    size: tuple[int, int],
    base: tuple[int, int, int],
    rng: random.Random,
) -> Image.Image:
    """An RGB image of ``size`` filled with ``pattern`` (drawn before masking)."""
    w, h = size
    fill = Image.new("RGB", size, base)
    d = ImageDraw.Draw(fill)
    mark = _secondary(base)
    period = rng.uniform(0.13, 0.18) * max(w, h)
    orient = rng.random()
    phase = rng.random() * period
    if pattern == "striped":
        big = 2 * (w + h)
        stripes = Image.new("L", (big, big), 0)
        sd = ImageDraw.Draw(stripes)
        y = phase - big
        while y < big:
            sd.rectangle((0, y, big, y + period / 2), fill=255)
            y += period
        # Mostly horizontal or vertical stripes, sometimes diagonal.
        angle = 0 if orient < 0.5 else 90 if orient < 0.8 else 45
        stripes = stripes.rotate(angle, resample=Image.Resampling.NEAREST)
        cx, cy = (big - w) // 2, (big - h) // 2
        fill.paste(mark, (0, 0, w, h), stripes.crop((cx, cy, cx + w, cy + h)))
    elif pattern == "dotted":
        r = 0.24 * period
        row = 0
        y = phase - period
        while y < h + period:
            offset = (period / 2) * (row % 2)
            x = -period + offset
            while x < w + period:
                d.ellipse((x - r, y - r, x + r, y + r), fill=mark)
                x += period
            y += period * 0.87
            row += 1
    elif pattern == "checked":
        cell = period * 0.55
        y0 = -phase
        for j in range(int(h / cell) + 3):
            for i in range(int(w / cell) + 3):
                if (i + j) % 2 == 0:
                    x, y = -phase + i * cell, y0 + j * cell
                    d.rectangle((x, y, x + cell, y + cell), fill=mark)
    elif pattern != "plain":
        raise ValueError(f"unknown pattern {pattern!r}")
    return fill


def _neutral(rng: random.Random, lo: int = 150, hi: int = 248) -> tuple[int, ...]:
    """A light, low-saturation colour that can't be mistaken for a product colour."""
    v = rng.uniform(lo, hi)
    warm = rng.uniform(-10, 10)
    return tuple(max(0, min(255, round(v + warm * k))) for k in (1.0, 0.5, -0.8))


def _background(size: int, rng: random.Random) -> Image.Image:
    """A solid, gradient or noisy neutral background."""
    kind = rng.random()
    c1 = _neutral(rng)
    c2 = _neutral(rng)
    amp = rng.randint(14, 40)
    noise_bytes = rng.randbytes((size // 4 + 1) ** 2)
    grad_dir = rng.random()
    if kind < 0.35:
        return Image.new("RGB", (size, size), c1)
    if kind < 0.7:
        grad = Image.linear_gradient("L").resize((size, size))
        if grad_dir < 0.5:
            grad = grad.transpose(Image.Transpose.ROTATE_90)
        return Image.composite(
            Image.new("RGB", (size, size), c1), Image.new("RGB", (size, size), c2), grad
        )
    # Grey noise at roughly quarter resolution so it survives the downsampling.
    n = size // 4 + 1
    noise = Image.frombytes("L", (n, n), noise_bytes).resize(
        (size, size), Image.Resampling.BILINEAR
    )
    noise = noise.point(lambda v: v * amp // 255).convert("RGB")
    darker = Image.new("RGB", (size, size), tuple(max(0, c - amp // 2) for c in c1))
    return ImageChops.add(darker, noise)


def render_product(
    product: Product, *, size: int = 64, rng: random.Random
) -> Image.Image:
    """Draw ``product`` as a ``size``x``size`` RGB photo on a random background."""
    if product.category not in _DRAWERS:
        raise ValueError(f"unknown category {product.category!r}")
    # Drawing at a multiple of the target size and box-downsampling anti-aliases.
    ss = 4 if size <= 128 else 2 if size <= 384 else 1
    canvas = size * ss
    jitter = [rng.uniform(0.9, 1.08) for _ in range(3)]
    base = tuple(
        max(0, min(255, round(c * j)))
        for c, j in zip(COLOURS[product.colour], jitter, strict=True)
    )
    extent = rng.uniform(*_EXTENT) * canvas
    aspect = _ASPECT[product.category]
    w, h = (extent, extent / aspect) if aspect >= 1 else (extent * aspect, extent)
    w, h = max(8, round(w)), max(8, round(h))
    angle = rng.uniform(-_MAX_ROTATION, _MAX_ROTATION)
    mirror = rng.random() < 0.5
    px, py = rng.random(), rng.random()

    shape = _Shape(w, h)
    _DRAWERS[product.category](shape, base)
    fill = _pattern_fill(product.pattern, (w, h), base, rng)
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    layer.paste(fill, (0, 0), shape.mask)
    # A thin darker rim keeps the silhouette visible on light backgrounds.
    rim_w = 2 * ss + 1
    rim = ImageChops.subtract(
        shape.mask, shape.mask.filter(ImageFilter.MinFilter(rim_w))
    )
    layer.paste(_shade(base, 0.55) + (255,), (0, 0), rim)
    draw = ImageDraw.Draw(layer)
    for detail in shape.details:
        detail(draw)
    if mirror:
        layer = layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    layer = layer.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)

    bg = _background(canvas, rng)
    lw, lh = layer.size
    # Positions stay near the centre: the less a tiny ViT must learn about
    # translation, the sooner it learns the silhouettes.
    px, py = (0.5 + (v - 0.5) * _POSITION_SPREAD for v in (px, py))
    x = round((canvas - lw) * px) if lw < canvas else (canvas - lw) // 2
    y = round((canvas - lh) * py) if lh < canvas else (canvas - lh) // 2
    bg.paste(layer, (x, y), layer)
    return bg.reduce(ss) if ss > 1 else bg


# ---------------------------------------------------------------------------- texts

_CATEGORY_WORDS = {
    "sneaker": ["sneakers", "sneaker", "trainers", "running shoes", "sneakers"],
    "handbag": ["handbag", "purse", "tote bag", "shoulder bag", "handbag"],
    "mug": ["mug", "coffee mug", "tea mug", "mug", "ceramic mug"],
    "t-shirt": ["t-shirt", "tee", "t shirt", "tshirt", "t-shirt"],
    "lamp": ["lamp", "table lamp", "desk lamp", "lamp", "bedside lamp"],
    "chair": ["chair", "dining chair", "side chair", "chair", "kitchen chair"],
    "watch": ["watch", "wristwatch", "analog watch", "watch", "wrist watch"],
    "bottle": ["bottle", "water bottle", "drinks bottle", "bottle", "flask"],
}

_COLOUR_WORDS = {
    "red": ["red", "red", "red", "crimson", "scarlet"],
    "orange": ["orange", "orange", "orange", "tangerine", "burnt orange"],
    "yellow": ["yellow", "yellow", "yellow", "lemon yellow", "sunshine yellow"],
    "green": ["green", "green", "green", "emerald green", "forest green"],
    "blue": ["blue", "blue", "blue", "royal blue", "cobalt blue"],
    "purple": ["purple", "purple", "purple", "violet", "plum"],
    "pink": ["pink", "pink", "pink", "hot pink", "rose pink"],
    "black": ["black", "black", "black", "jet black", "matte black"],
}

_PATTERN_ADJ = {
    "plain": ["plain", "solid", "solid colour", "plain", "solid-colour"],
    "striped": ["striped", "striped", "stripy", "stripe", "striped"],
    "dotted": ["polka dot", "dotted", "spotted", "polka-dot", "dotty"],
    "checked": ["checked", "checkered", "check", "plaid", "gingham"],
}

_PATTERN_NOUN = {
    "plain": ["no pattern", "a plain finish", "a solid colour", "a plain design"],
    "striped": ["stripes", "a striped pattern", "a stripe print", "bold stripes"],
    "dotted": ["polka dots", "dots", "a dot print", "little spots"],
    "checked": ["checks", "a check pattern", "a checkerboard print", "a plaid print"],
}

_SIZES = {
    "sneaker": ["size 9", "UK 8", "EU 42", "size 10", "US 7", "size 11"],
    "handbag": ["medium", "large", "small", "one size", "30cm", "mini"],
    "mug": ["350ml", "12 oz", "large", "11oz", "400 ml", "small"],
    "t-shirt": ["size M", "size L", "XL", "size S", "medium", "XXL"],
    "lamp": ["40cm", "small", "tall", "E27", "large", "compact"],
    "chair": ["set of 1", "single", "solid build", "stackable", "large", "compact"],
    "watch": ["38mm", "42mm", "unisex", "40 mm", "mens", "womens"],
    "bottle": ["500ml", "750 ml", "1L", "24oz", "1 litre", "600ml"],
}

_BRANDS = [
    "Nordvik",
    "Lumo",
    "Kestrel",
    "Urbano",
    "Pallas",
    "Brightwell",
    "Oaken",
    "Maris",
    "Tovi",
    "Halden",
]

_CONDITIONS = ["new", "brand new", "like new", "used", "vintage", "NWT", "pre-owned"]

_CATEGORY_FILLER = {
    "sneaker": [
        "Comfortable for running and walking.",
        "Lace-up with a cushioned sole.",
    ],
    "handbag": ["Roomy inside with a zip pocket.", "Sturdy top handle."],
    "mug": ["Dishwasher and microwave safe.", "Perfect for your morning coffee."],
    "t-shirt": ["Soft cotton, regular fit.", "Crew neck, short sleeves."],
    "lamp": ["Bulb not included.", "Gives a warm light for reading."],
    "chair": ["Solid and stable, no wobble.", "Fits most dining tables."],
    "watch": ["Keeps good time, new battery fitted.", "Adjustable strap."],
    "bottle": ["Leak-proof screw cap.", "Keeps drinks cold for hours."],
}

_GENERIC_FILLER = [
    "Great condition.",
    "Barely used.",
    "Smoke-free and pet-free home.",
    "Perfect as a gift.",
    "Colours are true to the photo.",
    "Bought last year and only used a few times.",
    "No marks or damage.",
    "Original packaging included.",
]

_BOILERPLATE = [
    "Ships within 2 business days. Returns accepted within 30 days of delivery.",
    "Free shipping on orders over $50; message me with any questions before buying.",
    "Please check my other listings, I combine postage on multiple items.",
    "Fast dispatch from a UK seller. Buyer pays return postage unless the item is "
    "not as described.",
    "All items are carefully packed and sent with tracking. No international "
    "shipping, sorry.",
    "Collection in person is also possible. Offers welcome, no time wasters please.",
]

_OPENERS = [
    "Fast shipping!",
    "Clearing out my house, everything must go.",
    "Price is firm.",
    "Great deal!",
]


def _case(text: str, u: float) -> str:
    if u < 0.25:
        return text.title()
    if u < 0.35:
        return text.lower()
    if u < 0.4:
        return text.upper()
    return text[0].upper() + text[1:]


def product_title(product: Product, rng: random.Random) -> str:
    """A marketplace-style title for ``product`` in varied wording."""
    # Every draw happens unconditionally so that titles of products differing in
    # one attribute (with the same rng state) differ in that attribute's words only.
    cat = _pick(rng, _CATEGORY_WORDS[product.category])
    col = _pick(rng, _COLOUR_WORDS[product.colour])
    adj = _pick(rng, _PATTERN_ADJ[product.pattern])
    noun = _pick(rng, _PATTERN_NOUN[product.pattern])
    brand = _pick(rng, _BRANDS)
    cond = _pick(rng, _CONDITIONS)
    size = _pick(rng, _SIZES[product.category])
    template = rng.random()
    u_brand, u_cond, u_size, u_case = (rng.random() for _ in range(4))
    brand_s = f"{brand} " if u_brand < 0.4 else ""
    cond_s = f"{cond} " if u_cond < 0.3 else ""
    size_s = f", {size}" if u_size < 0.35 else ""
    if template < 0.35:
        text = f"{cond_s}{brand_s}{col} {adj} {cat}{size_s}"
    elif template < 0.5:
        text = f"{brand_s}{adj} {col} {cat}{size_s}"
    elif template < 0.65:
        text = f"{cond_s}{col} {cat} with {noun}{size_s}"
    elif template < 0.8:
        text = f"{brand_s}{cat} - {col}, {adj}{size_s}"
    elif template < 0.9:
        text = f"{brand_s}{cat} in {col} ({adj}){size_s}"
    else:
        text = f"{adj} {cat}, {col}{size_s}{' - ' + cond if u_cond < 0.6 else ''}"
    return _case(text, u_case)


def product_description(product: Product, rng: random.Random) -> str:
    """A 1–4 sentence listing description for ``product``, maybe with boilerplate."""
    cat = _pick(rng, _CATEGORY_WORDS[product.category])
    col = _pick(rng, _COLOUR_WORDS[product.colour])
    adj = _pick(rng, _PATTERN_ADJ[product.pattern])
    noun = _pick(rng, _PATTERN_NOUN[product.pattern])
    brand = _pick(rng, _BRANDS)
    cond = _pick(rng, _CONDITIONS)
    size = _pick(rng, _SIZES[product.category])
    cat_filler = _pick(rng, _CATEGORY_FILLER[product.category])
    filler = _pick(rng, _GENERIC_FILLER)
    boiler = _pick(rng, _BOILERPLATE)
    opener = _pick(rng, _OPENERS)
    template = rng.random()
    u_extra, u_boiler, u_opener, u_brand = (rng.random() for _ in range(4))
    by = f" by {brand}" if u_brand < 0.3 else ""
    core = [
        f"This {col} {cat}{by} has a {adj} design.",
        f"{adj.capitalize()} {cat} in {col}, {cond}.",
        f"Selling my {col} {cat} with {noun}.",
        f"{col.capitalize()} {cat}{by} featuring {noun}, {size}.",
        f"Lovely {adj} {col} {cat}, {cond} condition.",
        f"For sale: {cond} {cat}{by}. Colour: {col}. Pattern: {adj}.",
    ]
    sentences = [core[min(int(template * len(core)), len(core) - 1)]]
    if u_extra < 0.6:
        sentences.append(cat_filler)
    if u_extra < 0.3:
        sentences.append(filler)
    if u_boiler < 0.35:
        sentences.append(boiler)
    if u_opener < 0.1:
        sentences.insert(0, opener)
    return " ".join(sentences)


# -------------------------------------------------------------------------- catalog


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
                    attribute = _pick(rng, ATTRIBUTES)
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
