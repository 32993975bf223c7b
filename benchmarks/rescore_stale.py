"""Time `manage.py rescore --stale` after a threshold change on a seeded catalog.

Seeds N scored listings with bulk_create into a scratch database (every image and
text embedded in the cache, random unit vectors of the model's width, scored with
the model's own thresholds), applies new thresholds, and times the command. Run
from the project root, on a database that may be wiped:

    DATABASE_URL=sqlite:////tmp/rescore-bench.sqlite3 CLIPMATCH_MEDIA_ROOT=/tmp/rb-media \\
        .venv/bin/python benchmarks/rescore_stale.py --listings 10000

It writes to the database it is given: never point it at a real one.
"""

import argparse
import hashlib
import os
import random
import sys
import time
from io import StringIO
from pathlib import Path

sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import django

    django.setup()
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.files.storage import default_storage
    from django.core.management import call_command
    from django.utils import timezone

    from clipmatch.inference.scoring import PASS, REVIEW
    from clipmatch.models import Embedding
    from clipmatch.services import (
        model_version_active,
        prompt_templates_for,
        text_hash,
        threshold_version_apply,
        threshold_version_propose,
    )
    from listings.models import Category, Listing, ListingImage, ListingScore

    call_command("flush", "--no-input", verbosity=0)
    call_command("migrate", verbosity=0)
    rng = np.random.default_rng(args.seed)
    random.seed(args.seed)
    active = model_version_active()
    version = active.version
    dim = active.engine().embed_texts(["a mug"])[0].shape[1]

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    embeddings = {}

    def embed(kind: str, key: str, vectors: np.ndarray) -> None:
        embeddings[(kind, key)] = Embedding(
            model_version=version,
            kind=kind,
            content_hash=key,
            chunks=vectors.shape[0],
            dim=dim,
            vectors=vectors.tobytes(),
        )

    names = ["sneaker", "handbag", "mug", "t-shirt", "lamp", "chair", "watch", "bottle"]
    categories = [
        Category.objects.get_or_create(name=n, defaults={"slug": n})[0] for n in names
    ]
    templates = prompt_templates_for(active.source)
    for name in names:
        for template in templates:
            embed("text", text_hash(template.format(name, category=name)), unit(1))
    seller = get_user_model().objects.create_user("bench-seller")
    staff = get_user_model().objects.create_user("bench-staff", is_staff=True)
    thresholds = active.thresholds.as_dict()
    listings, images, files = [], [], []
    # Photo signals as a catalog scored since they exist has them (a re-route from
    # cached embeddings reads them; an image without them is decoded from its file).
    signals_at = timezone.now()
    quality = {
        "measures": {
            "width": 1200,
            "height": 900,
            "sharpness": 30.0,
            "brightness": 128.0,
            "contrast": 50.0,
        },
        "findings": [],
    }
    for n in range(args.listings):
        listing = Listing(
            seller=seller,
            title=f"listing {n} title",
            description=f"listing {n} description, long enough to say something",
            category=random.choice(categories),
            price=random.randint(1, 500),
            status=Listing.Status.PASSED,
            content_hash=hashlib.sha256(f"content {n}".encode()).hexdigest(),
        )
        listings.append(listing)
        embed("text", text_hash(listing.title), unit(1))
        embed("text", text_hash(listing.description), unit(2))
    Listing.objects.bulk_create(listings, batch_size=1000)
    listings = list(Listing.objects.order_by("pk"))
    for listing in listings:
        for position in range(random.choice([1, 2, 3, 3, 4])):
            data = f"image {listing.pk} {position}".encode()
            key = hashlib.sha256(data).hexdigest()
            path = f"listings/{listing.pk}/{key[:32]}.png"
            files.append((path, data))
            images.append(
                ListingImage(
                    listing=listing,
                    image=path,
                    content_hash=key,
                    position=position,
                    quality=quality,
                    signals_at=signals_at,
                )
            )
            embed("image", key, unit(1))
    for path, data in files:
        full = Path(default_storage.path(path))
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
    ListingImage.objects.bulk_create(images, batch_size=1000)
    Embedding.objects.bulk_create(embeddings.values(), batch_size=1000)
    scores = [
        ListingScore(
            listing=listing,
            model_version=version,
            content_hash=listing.content_hash,
            verdict=PASS if n % 3 else REVIEW,
            similarity=0.0,
            thresholds=thresholds,
            reasons=["seeded"],
            images=[],
            computed_at=listing.created_at,
        )
        for n, listing in enumerate(listings)
    ]
    ListingScore.objects.bulk_create(scores, batch_size=1000)
    by_listing = {s.listing_id: s.pk for s in ListingScore.objects.all()}
    for listing in listings:
        listing.score_id = by_listing[listing.pk]
    Listing.objects.bulk_update(listings, ["score"], batch_size=1000)
    # Cut-offs around the random vectors' cosines, so that the change moves some.
    cuts = {"pass": 0.05, "hold": -0.15}
    proposal = threshold_version_propose(
        version=version,
        thresholds={"title": cuts, "description": cuts},
        figures={},
    )
    threshold_version_apply(proposal=proposal, actor=staff)

    out = StringIO()
    started, cpu = time.perf_counter(), time.process_time()
    call_command("rescore", "--stale", stdout=out, verbosity=0)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    from django.db import connection

    print(out.getvalue().strip())
    moved = dict(
        Listing.objects.values_list("status").annotate(n=django.db.models.Count("pk"))
    )
    failed = Listing.objects.exclude(scoring_error="").count()
    print(
        f"{connection.vendor}: {len(listings)} listings, {len(images)} images; "
        f"rescore --stale {elapsed:.2f} s, {len(listings) / elapsed:.0f} listings/s "
        f"({cpu:.2f} s of this process's CPU: {len(listings) / cpu:.0f} per CPU s); "
        f"now {moved}"
    )
    if failed:
        sys.exit(f"{failed} listing(s) failed to re-route: the figures above are void.")


if __name__ == "__main__":
    main()
