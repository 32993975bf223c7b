"""A labelled catalog of products that nobody on the team drew: colour emoji.

    python -m training.emoji_catalog [--font path/to/NotoColorEmoji.ttf]

Google's Noto Color Emoji glyphs of everyday products (shoes, bags, tools,
instruments...) are rendered with Pillow at random sizes, positions, rotations and
backgrounds, and labelled with their Unicode character names ("ATHLETIC SHOE",
"HANDBAG"), which come from Python's ``unicodedata``, not from us. Writes seed-format
CSVs (``image_path,text,label``) under ``training/data/emoji/`` (git-ignored):

- ``train.csv``, ``val.csv``, ``test.csv``: the same products, different renderings
  (a marketplace's catalog keeps selling the same kinds of things);
- ``novel.csv``: renderings of products held out of all three, to see how far the
  tuning carries to products it never saw.

A match is a rendering with its own name in one of a few phrasings; a mismatch is
the same rendering with another product's name (from the same split) in the same
phrasing. Only the choice of which code points count as products is ours.
"""

from __future__ import annotations

import argparse
import random
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from clipmatch.inference.pairs import write_pairs

DEFAULT_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
OUT_DIR = Path(__file__).resolve().parent / "data" / "emoji"
GLYPH_SIZE = 109  # the one size Noto Color Emoji's bitmaps come in
# Things a marketplace sells. The names are Unicode's, e.g. U+1F45F ATHLETIC SHOE.
PRODUCT_CODEPOINTS = (
    0x1F302, 0x1F37C, 0x1F393, 0x1F3A7, 0x1F3A9, 0x1F3B7, 0x1F3B8, 0x1F3B9,
    0x1F3BA, 0x1F3BB, 0x1F3C6, 0x1F451, 0x1F452, 0x1F454, 0x1F455, 0x1F456,
    0x1F457, 0x1F458, 0x1F459, 0x1F45B, 0x1F45C, 0x1F45D, 0x1F45E, 0x1F45F,
    0x1F460, 0x1F461, 0x1F484, 0x1F48D, 0x1F4A1, 0x1F4BB, 0x1F4BC, 0x1F4D3,
    0x1F4F1, 0x1F4F7, 0x1F4FA, 0x1F4FB, 0x1F50B, 0x1F50C, 0x1F511, 0x1F512,
    0x1F514, 0x1F527, 0x1F528, 0x1F52C, 0x1F52D, 0x1F56F, 0x1F576, 0x1F5A5,
    0x1F5A8, 0x1F6B2, 0x1F6CB, 0x1F6CF, 0x1F6F4, 0x1F6F9, 0x1F941, 0x1F944,
    0x1F94A, 0x1F97C, 0x1F97D, 0x1F97E, 0x1F97F, 0x1F9E2, 0x1F9E3, 0x1F9E4,
    0x1F9E5, 0x1F9E6, 0x1F9F2, 0x1F9F3, 0x1F9F4, 0x1F9F8, 0x1F9F9, 0x1F9FA,
    0x1F9FC, 0x1F9FD, 0x1FA71, 0x1FA73, 0x1FA74, 0x1FA7A, 0x1FA80, 0x1FA81,
    0x1FA91, 0x1FA93, 0x1FA95, 0x1FA97, 0x1FA9A, 0x1FA9B, 0x1FA9C, 0x1FA9E,
    0x1FAA3, 0x1FAD6, 0x1FAD9, 0x0231A, 0x023F0, 0x026BD, 0x026FA, 0x02702,
    0x0270F,
)  # fmt: skip
PHRASINGS = ("{}", "a {}", "{} for sale", "photo of a {}", "used {}, good condition")


def product_name(codepoint: int) -> str:
    """The product's Unicode name in lower case: 'athletic shoe'."""
    return unicodedata.name(chr(codepoint)).lower()


def glyph(font: ImageFont.FreeTypeFont, codepoint: int) -> Image.Image:
    """The emoji as an RGBA image cropped to its ink."""
    canvas = Image.new("RGBA", (GLYPH_SIZE * 2, GLYPH_SIZE * 2), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text(
        (GLYPH_SIZE // 4, GLYPH_SIZE // 4),
        chr(codepoint),
        font=font,
        embedded_color=True,
    )
    box = canvas.getbbox()
    if box is None:
        raise ValueError(f"The font has no glyph for U+{codepoint:04X}.")
    return canvas.crop(box)


def _background(size: int, rng: random.Random) -> Image.Image:
    light = lambda: tuple(rng.randint(170, 250) for _ in range(3))  # noqa: E731
    kind = rng.random()
    if kind < 0.4:
        return Image.new("RGB", (size, size), light())
    if kind < 0.8:
        top, bottom = light(), light()
        image = Image.new("RGB", (size, size))
        draw = ImageDraw.Draw(image)
        for y in range(size):
            t = y / max(1, size - 1)
            colour = tuple(
                int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)
            )
            draw.line([(0, y), (size, y)], fill=colour)
        return image
    noise = Image.effect_noise((size, size), rng.uniform(10, 30)).convert("RGB")
    return Image.blend(Image.new("RGB", (size, size), light()), noise, 0.25)


def render(art: Image.Image, size: int, rng: random.Random) -> Image.Image:
    """One photo-like rendering: random scale, rotation, mirror, position, blur."""
    item = art.rotate(rng.uniform(-15, 15), expand=True, resample=Image.BICUBIC)
    if rng.random() < 0.5:
        item = item.transpose(Image.FLIP_LEFT_RIGHT)
    scale = rng.uniform(0.45, 0.9) * size / max(item.size)
    item = item.resize(
        (max(1, round(item.width * scale)), max(1, round(item.height * scale))),
        Image.LANCZOS,
    )
    image = _background(size, rng)
    x = rng.randint(0, size - item.width)
    y = rng.randint(0, size - item.height)
    image.paste(item, (x, y), item)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    return image


def build(
    out_dir: Path,
    *,
    font_path: str = DEFAULT_FONT,
    renders: Sequence[int] = (12, 3, 4),
    novel_share: float = 0.2,
    novel_renders: int = 4,
    size: int = 128,
    seed: int = 0,
) -> dict[str, Path]:
    """Render the catalog and write its CSVs; returns their paths by split."""
    try:
        font = ImageFont.truetype(font_path, GLYPH_SIZE)
    except OSError as exc:
        raise SystemExit(
            f"Cannot open the emoji font {font_path} ({exc}); on Debian: "
            "apt-get install fonts-noto-color-emoji"
        ) from exc
    rng = random.Random(f"clipmatch-emoji-{seed}")
    products = list(PRODUCT_CODEPOINTS)
    rng.shuffle(products)
    n_novel = round(len(products) * novel_share)
    known, novel = products[n_novel:], products[:n_novel]
    plan = {"train": (known, renders[0]), "val": (known, renders[1])}
    plan["test"] = (known, renders[2])
    plan["novel"] = (novel, novel_renders)
    art = {cp: glyph(font, cp) for cp in products}
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    written = {}
    for split, (codepoints, count) in plan.items():
        rows = []
        for cp in codepoints:
            for k in range(count):
                image = render(art[cp], size, rng)
                rel = f"images/{split}-{cp:05x}-{k:02d}.png"
                image.save(out_dir / rel)
                phrasing = rng.choice(PHRASINGS)
                other = rng.choice([c for c in codepoints if c != cp])
                rows.append(
                    {"image_path": rel, "text": phrasing.format(product_name(cp))}
                )
                rows[-1]["label"] = 1
                rows.append(
                    {
                        "image_path": rel,
                        "text": phrasing.format(product_name(other)),
                        "label": 0,
                    }
                )
        written[split] = write_pairs(out_dir / f"{split}.csv", rows)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--font", default=DEFAULT_FONT)
    parser.add_argument("--output", type=Path, default=OUT_DIR)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args(argv)
    paths = build(args.output, font_path=args.font, size=args.size, seed=args.seed)
    for split, path in paths.items():
        lines = path.read_text().count("\n") - 1
        print(f"{split:6} {lines:5} pairs  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
