"""What the scoring path's lean decoding changes in the cosines.

Renders synthetic catalog products as JPEGs and compares each title's cosine with
its image decoded in full through the checkpoint's processor (the reference) and
decoded as the app does: drafted to twice the model's input side, then the engine's
one-pass pixels. Prints mean and max |delta cos|.

    .venv/bin/python -m training.measure_lean_decoding --model MODEL_DIR
"""

from __future__ import annotations

import argparse
import io
import random

import numpy as np

from clipmatch.inference.engine import ClipEngine
from clipmatch.inference.images import decode_image
from clipmatch.inference.sources import resolve_model
from training import catalog

LIMITS = {"max_pixels": 40_000_000, "max_bytes": 15 << 20, "formats": ["JPEG"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--size", type=int, default=1200, help="JPEG side, pixels")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    engine = ClipEngine(resolve_model(args.model), device="cpu", precision="fp32")
    rng = random.Random(args.seed)
    photos, titles = [], []
    for _ in range(args.n):
        product = catalog.random_product(rng)
        buffer = io.BytesIO()
        catalog.render_product(product, size=args.size, rng=rng).save(
            buffer, "JPEG", quality=90
        )
        photos.append(buffer.getvalue())
        titles.append(catalog.product_title(product, rng))
    texts = engine.embed_texts(titles)

    def cosines(images, inputs) -> np.ndarray:
        vectors = engine.embed_image_inputs(inputs(images))
        return np.array(
            [float((v @ t.T).max()) for v, t in zip(vectors, texts, strict=True)]
        )

    full = [decode_image(data, **LIMITS).image for data in photos]
    side = 2 * engine.input_side
    lean = [decode_image(data, **LIMITS, min_side=side).image for data in photos]
    reference = cosines(full, engine.processor_image_inputs)
    for name, images, inputs in (
        ("draft, processor", lean, engine.processor_image_inputs),
        ("draft, one-pass pixels", lean, engine.image_inputs),
    ):
        delta = np.abs(cosines(images, inputs) - reference)
        print(
            f"{args.n} {args.size} px JPEGs decoded at {lean[0].size[0]} px, {name}, "
            f"against full decode + processor: mean |delta cos| {delta.mean():.5f}, "
            f"max {delta.max():.5f}"
        )


if __name__ == "__main__":
    main()
