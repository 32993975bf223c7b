"""The seed CSV format: image_path,text[,label][,category], read once for everyone.

``clip_batch_test`` and the fine-tuning program both read labelled pairs through
this module, so a file that one accepts the other accepts too. No Django here.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from clipmatch.inference.images import upright_rgb

REQUIRED = ("image_path", "text")


class PairsError(ValueError):
    """A CSV of pairs that cannot be used as it is; the message names the row."""


@dataclass
class Pair:
    """One image-text pair from a CSV (row = its line number in the file)."""

    row: int
    image_path: str
    path: Path
    text: str
    label: int | None
    category: str = ""
    source: str = ""

    @property
    def where(self) -> str:
        return f"{self.source} row {self.row}" if self.source else f"row {self.row}"


def read_pairs(csv_path: Path, *, require_label: bool = False) -> list[Pair]:
    """Rows with image paths made absolute (relative to the CSV's folder).

    Every problem with the file's shape names the row; the images are not opened
    here (see ``open_images``).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise PairsError(f"No CSV file at {csv_path}.")
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        required = (*REQUIRED, "label") if require_label else REQUIRED
        missing = [c for c in required if c not in columns]
        if missing:
            raise PairsError(
                f"{csv_path}: missing column(s) {', '.join(missing)}; "
                f"expected image_path,text{',label' if require_label else '[,label]'}"
                f" (found {','.join(columns) or 'nothing'})."
            )
        rows = []
        for line, row in enumerate(reader, start=2):
            if None in row:  # more cells than the header has columns
                raise PairsError(
                    f"{csv_path} row {line}: {len(columns) + len(row[None])} cells "
                    f"for {len(columns)} columns."
                )
            label = (row.get("label") or "").strip()
            if "label" in columns and label not in ("0", "1"):
                raise PairsError(
                    f"{csv_path} row {line}: label must be 0 or 1, not {label!r}."
                )
            image_path = (row["image_path"] or "").strip()
            if not image_path:
                raise PairsError(f"{csv_path} row {line}: image_path is empty.")
            if row["text"] is None or not row["text"].strip():
                raise PairsError(f"{csv_path} row {line}: text is empty.")
            rows.append(
                Pair(
                    row=line,
                    image_path=image_path,
                    path=(csv_path.parent / image_path).resolve(),
                    text=row["text"],
                    label=int(label) if label else None,
                    category=(row.get("category") or "").strip(),
                    source=str(csv_path),
                )
            )
    if not rows:
        raise PairsError(f"{csv_path} has no rows.")
    return rows


def open_image(pair: Pair) -> Image.Image:
    """The pair's image as RGB, or a PairsError that names the row and the file."""
    if not pair.path.is_file():
        raise PairsError(f"{pair.where}: image file {pair.image_path} does not exist.")
    try:
        with Image.open(pair.path) as image:
            image.seek(0)  # the first frame, as the app decodes it
            image.load()
            return upright_rgb(image)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise PairsError(
            f"{pair.where}: image {pair.image_path} cannot be read "
            f"({exc.__class__.__name__}: {exc})."
        ) from exc


def open_images(pairs: Sequence[Pair]) -> list[Image.Image]:
    """Every pair's image, checked before any training starts."""
    return [open_image(pair) for pair in pairs]


def write_pairs(csv_path: Path, rows: Sequence[dict]) -> Path:
    """Write rows (image_path,text,label[,category]) in the seed format."""
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["image_path", "text", "label"]
    if any(r.get("category") for r in rows):
        columns.append("category")
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return csv_path
