"""Score one image against one text with a CLIP model."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from clipmatch.images import decode_image
from clipmatch.inference.images import UnreadableImage
from clipmatch.inference.scoring import best_chunk_similarity
from clipmatch.management.common import add_model_argument, engine_and_thresholds


class Command(BaseCommand):
    help = "Print the raw cosine similarity of an image and a text, and its band."

    def add_arguments(self, parser):
        parser.add_argument("--image", required=True, type=Path)
        parser.add_argument("--text", required=True)
        add_model_argument(parser)
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON object."
        )

    def handle(self, *args, **options):
        path: Path = options["image"]
        if not path.is_file():
            raise CommandError(f"No image file at {path}.")
        try:
            image = decode_image(path.read_bytes())
        except UnreadableImage as exc:
            raise CommandError(f"{path}: {exc}") from exc
        engine, thresholds = engine_and_thresholds(options["model"])
        image_vector = engine.embed_images([image.image])[0]
        chunks = engine.embed_texts([options["text"]])[0]
        similarity = best_chunk_similarity(image_vector, chunks)
        result = {
            "model_version": engine.version,
            "similarity": round(similarity, 6),
            "band": thresholds.band("title", similarity),
            "text_windows": int(chunks.shape[0]),
            "thresholds": thresholds.as_dict()["title"],
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(
            f"similarity {result['similarity']:.4f} -> {result['band']} "
            f"(pass >= {thresholds.title_pass:.3f}, "
            f"hold < {thresholds.title_hold:.3f}; "
            f"{engine.version})"
        )
