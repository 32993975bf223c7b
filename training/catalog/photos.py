"""Pillow-drawn product photos: one silhouette per category, patterned and posed."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from training.catalog.products import COLOURS, Product

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
