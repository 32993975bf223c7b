"""Score a CSV of image-text pairs and, with labels, report how well they separate."""

import csv
import json
import math
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from clipmatch import conf
from clipmatch.images import decode_image
from clipmatch.inference import pairs as pairs_module
from clipmatch.inference.images import UnreadableImage
from clipmatch.inference.metrics import binary_metrics
from clipmatch.inference.scoring import best_chunk_similarity
from clipmatch.management.common import add_model_argument, engine_and_thresholds


def read_pairs(csv_path: Path) -> list[dict]:
    """Rows of image_path,text[,label] with paths made absolute; errors name the row."""
    try:
        pairs = pairs_module.read_pairs(csv_path)
    except pairs_module.PairsError as exc:
        raise CommandError(str(exc)) from exc
    return [
        {
            "row": p.row,
            "image_path": p.image_path,
            "path": p.path,
            "text": p.text,
            "label": p.label,
        }
        for p in pairs
    ]


class Command(BaseCommand):
    help = (
        "Score image_path,text[,label] pairs from a CSV (paths relative to the CSV); "
        "with labels, report ROC-AUC, PR-AUC and accuracy/precision/recall/F1 of the "
        "'match' class at the model's title pass threshold."
    )

    def add_arguments(self, parser):
        parser.add_argument("--csv", required=True, type=Path)
        add_model_argument(parser)
        parser.add_argument(
            "--output", type=Path, help="Write the per-pair scores here."
        )
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON object."
        )
        parser.add_argument("--batch-size", type=int, default=None)

    def handle(self, *args, **options):
        rows = read_pairs(options["csv"])
        engine, thresholds = engine_and_thresholds(options["model"])
        batch = options["batch_size"] or conf.get("BATCH_SIZE")
        bar = tqdm(
            total=len(rows),
            desc="pairs",
            unit="pair",
            file=sys.stderr,
            disable=options["verbosity"] == 0,
        )
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            readable = []
            for row in chunk:
                try:
                    row["image"] = decode_image(row["path"].read_bytes()).image
                    readable.append(row)
                except (OSError, UnreadableImage) as exc:
                    row["error"] = f"row {row['row']}: {exc}"
            if readable:
                images = engine.embed_images([r.pop("image") for r in readable])
                texts = engine.embed_texts([r["text"] for r in readable])
                for row, image, text in zip(readable, images, texts, strict=True):
                    row["similarity"] = best_chunk_similarity(image, text)
            bar.update(len(chunk))
        bar.close()
        scored = [r for r in rows if "similarity" in r]
        errors = [r["error"] for r in rows if "error" in r]
        for message in errors:
            self.stderr.write(message)
        if options["output"]:
            self._write(options["output"], rows, thresholds.title_pass)
        labelled = [r for r in scored if r["label"] is not None]
        report = {
            "n": len(scored),
            "model_version": engine.version,
            "unreadable": len(errors),
        }
        if labelled:
            report.update(
                binary_metrics(
                    [r["label"] for r in labelled],
                    [r["similarity"] for r in labelled],
                    thresholds.title_pass,
                )
            )
        if options["json"]:
            clean = {
                k: None if isinstance(v, float) and math.isnan(v) else v
                for k, v in report.items()
            }
            self.stdout.write(json.dumps(clean))
            return
        for key, value in report.items():
            if isinstance(value, float) and not math.isnan(value):
                value = f"{value:.4f}"
            self.stdout.write(f"{key:>14}: {value}")

    def _write(self, path: Path, rows: list[dict], threshold: float) -> None:
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(
                ["image_path", "text", "label", "similarity", "match", "error"]
            )
            for r in rows:
                sim = r.get("similarity")
                writer.writerow(
                    [
                        r["image_path"],
                        r["text"],
                        "" if r["label"] is None else r["label"],
                        "" if sim is None else f"{sim:.6f}",
                        "" if sim is None else int(sim >= threshold),
                        r.get("error", ""),
                    ]
                )
