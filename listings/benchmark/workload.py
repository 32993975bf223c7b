"""The benchmark's workload: synthetic listings with photo-like JPEGs and PNGs in
the shares phones upload them, and a random model of ViT-B/32's shape."""

from __future__ import annotations

import io
import json
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BUNDLED_MODEL = Path(__file__).resolve().parents[2] / "clipmatch/bundled/clipmatch-mini"

# Photo kinds by share of all photos: what phones and scanners upload.
PHOTO_KINDS = (
    (("JPEG", (1600, 1200)), 0.5),
    (("JPEG", (3000, 2000)), 0.25),
    (("PNG", (800, 800)), 0.25),
)
# Photos per listing (mean 2.56) and windows of a description (mean 2.19; with the
# title's one window, 3.19 text windows per listing), by share of listings. A run
# has them in these shares (`_quota`), not drawn at random, so its averages hold.
PHOTO_COUNTS = ((1, 0.16), (2, 0.32), (3, 0.32), (4, 0.20))
DESCRIPTION_WINDOWS = ((1, 0.35), (2, 0.25), (3, 0.26), (4, 0.14))


@dataclass(frozen=True)
class Photo:
    name: str
    data: bytes
    kind: str  # "JPEG 1600x1200"


@dataclass
class BenchListing:
    """One synthetic listing, the same content in every arm and every round."""

    title: str
    description: str
    category: str
    photos: list[Photo]
    windows_drawn: int  # the description's windows, at least
    paths: list[Path] = field(default_factory=list)  # the photos on disk (seed loop)


def _quota(rng: random.Random, table, n: int) -> list:
    """`n` values in the table's shares as nearly as `n` allows (largest
    remainders), in a seeded random order: a small run has the averages too."""
    exact = [(value, share * n) for value, share in table]
    counts = {value: int(x) for value, x in exact}
    by_remainder = sorted(exact, key=lambda item: item[1] - int(item[1]), reverse=True)
    for value, _ in by_remainder[: n - sum(counts.values())]:
        counts[value] += 1
    values = [value for value, count in counts.items() for _ in range(count)]
    rng.shuffle(values)
    return values


def photo_render(seed: int, size: tuple[int, int], fmt: str) -> bytes:
    """A photo-like image: a lit gradient, soft texture, objects and sensor noise,
    so that it compresses (and decodes) like a photo, not like a flat colour."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    width, height = size
    # Drawn at half size and enlarged: soft edges, as a lens gives them.
    w2, h2 = width // 2, height // 2
    gx = np.linspace(0, 1, w2, dtype=np.float32)[None, :]
    gy = np.linspace(0, 1, h2, dtype=np.float32)[:, None]
    a, b = rng.uniform(-1, 1, 2).astype(np.float32)
    light = (a * gx + b * gy - min(0, a) - min(0, b)) / (abs(a) + abs(b) + 1e-6)
    dark, bright = rng.uniform(20, 120, 3), rng.uniform(130, 250, 3)
    pixels = dark + (bright - dark) * light[..., None]
    texture = rng.normal(0, 18, (max(2, h2 // 20), max(2, w2 // 20), 3))
    soft = Image.fromarray(np.clip(texture + 128, 0, 255).astype(np.uint8))
    pixels += np.asarray(soft.resize((w2, h2), Image.BICUBIC), dtype=np.float32) - 128
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 14))):
        x0, y0 = rng.uniform(0, w2), rng.uniform(0, h2)
        w, h = rng.uniform(0.05, 0.45) * w2, rng.uniform(0.05, 0.45) * h2
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = (x0, y0, x0 + w, y0 + h)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    image = image.resize(size, Image.BICUBIC)
    noise = rng.standard_normal((height, width, 3), dtype=np.float32) * 5
    noisy = np.asarray(image, dtype=np.float32) + noise
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=90)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def workload_build(
    *, count: int, seed: int, windows: Callable[[str], int]
) -> list[BenchListing]:
    """`count` listings, the same for a seed; a description grows by sentences of
    the catalog's wording until it takes its drawn number of `windows`."""
    from training import catalog

    rng = random.Random(seed)
    photo_counts = _quota(rng, PHOTO_COUNTS, count)
    kinds = iter(_quota(rng, PHOTO_KINDS, sum(photo_counts)))
    targets = _quota(rng, DESCRIPTION_WINDOWS, count)
    listings = []
    for index, target in enumerate(targets):
        product = catalog.random_product(rng)
        description = catalog.product_description(product, rng)
        more: list[str] = []
        while windows(description) < target:
            if not more:  # another description of the same product, by sentence
                more = catalog.product_description(product, rng).split(". ")
            description += " " + more.pop(0).rstrip(".") + "."
        photos = []
        for number in range(photo_counts[index]):
            fmt, size = next(kinds)
            data = photo_render(rng.getrandbits(32), size, fmt)
            extension = "jpg" if fmt == "JPEG" else "png"
            photos.append(
                Photo(
                    f"listing-{index}-{number}.{extension}",
                    data,
                    f"{fmt} {size[0]}x{size[1]}",
                )
            )
        listings.append(
            BenchListing(
                title=catalog.product_title(product, rng),
                description=description,
                category=product.category,
                photos=photos,
                windows_drawn=target,
            )
        )
    return listings


def workload_summary(listings: list[BenchListing], windows) -> dict:
    kinds: dict[str, list[int]] = {}
    for listing in listings:
        for photo in listing.photos:
            kinds.setdefault(photo.kind, []).append(len(photo.data))
    n = len(listings)
    return {
        "listings": n,
        "photos_per_listing": round(sum(len(x.photos) for x in listings) / n, 2),
        "text_windows_per_listing": round(
            sum(windows(x.title) + windows(x.description) for x in listings) / n, 2
        ),
        "photos": {
            kind: {"count": len(sizes), "mean_bytes": int(statistics.mean(sizes))}
            for kind, sizes in sorted(kinds.items())
        },
    }


def random_vit_b32_build(path: Path, *, seed: int = 0) -> Path:
    """A randomly initialised CLIP of ViT-B/32's shape (CLIPConfig's defaults),
    saved like a real checkpoint: the bundled model's tokenizer at a 77-token
    context, CLIP's default 224-pixel image processor, the bundled thresholds."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    torch.manual_seed(seed)
    tokenizer = CLIPTokenizer.from_pretrained(BUNDLED_MODEL)
    tokenizer.model_max_length = 77
    config = CLIPConfig()
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(config.text_config, name, getattr(tokenizer, name))
    model = CLIPModel(config).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer)
    processor.save_pretrained(path)
    bundled = json.loads((BUNDLED_MODEL / "clipmatch.json").read_text())
    meta = {
        "name": "random-vit-b32",
        "thresholds": bundled["thresholds"],
        "category_top_k": bundled["category_top_k"],
    }
    (path / "clipmatch.json").write_text(json.dumps(meta))
    return path
