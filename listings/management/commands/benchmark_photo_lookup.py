"""Measure the reused-photo lookup among many stored hashes, on this database."""

import random
import statistics
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from clipmatch import conf
from clipmatch.inference import photos as core
from listings.models import Category, ImageHash, Listing, ListingImage
from listings.services.photos import _lookup_clause, reuse_candidates

BENCH_SELLER = "photo-lookup-benchmark"


class Command(BaseCommand):
    help = (
        "Fill an EMPTY scratch database with --rows stored photo hashes (random "
        f"64-bit values, {len(core.CROP_VARIANTS)} per image as the app stores "
        "them), then look up catalog photos as a new listing's would be: rows read "
        "through the band indexes, the query plan, and the time per lookup. Point "
        "DATABASE_URL at a database made for it and drop it afterwards."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=1_000_000)
        parser.add_argument("--lookups", type=int, default=20)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options):
        if Listing.objects.exclude(seller__username=BENCH_SELLER).exists():
            raise CommandError(
                "This database holds listings: run this only on an empty scratch "
                "database (DATABASE_URL=...; migrate it first)."
            )
        if not ImageHash.objects.exists():
            self._fill(options["rows"], random.Random(options["seed"]))
        stored = ImageHash.objects.count()
        self.stdout.write(f"{connection.vendor}: {stored:,} stored hashes")
        self._measure(options["lookups"], options["seed"])

    def _fill(self, rows: int, rng: random.Random) -> None:
        per_image = len(core.CROP_VARIANTS)
        seller, _ = get_user_model().objects.get_or_create(username=BENCH_SELLER)
        category, _ = Category.objects.get_or_create(
            name="benchmark", defaults={"slug": "benchmark"}
        )
        images_needed = rows // per_image
        started = time.perf_counter()
        made = 0
        while made < images_needed:
            with transaction.atomic():
                listing = Listing.objects.create(
                    seller=seller, title="benchmark", category=category, price=1
                )
                count = min(1000, images_needed - made)
                images = ListingImage.objects.bulk_create(
                    [
                        ListingImage(
                            listing=listing,
                            image=f"benchmark/{made + n}.png",
                            content_hash=f"{made + n:064x}",
                            position=n,
                        )
                        for n in range(count)
                    ]
                )
                hashes = []
                for image in images:
                    for variant in range(per_image):
                        value = rng.getrandbits(64)
                        bands = core.bands(value)
                        hashes.append(
                            ImageHash(
                                image_id=image.pk,
                                variant=variant,
                                phash=core.to_signed(value),
                                band0=bands[0],
                                band1=bands[1],
                                band2=bands[2],
                                band3=bands[3],
                            )
                        )
                ImageHash.objects.bulk_create(hashes, batch_size=5000)
            made += count
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # both databases plan from statistics
        self.stdout.write(
            f"stored {made * per_image:,} hashes of {made:,} images in "
            f"{time.perf_counter() - started:.0f} s"
        )

    def _measure(self, lookups: int, seed: int) -> None:
        from training.catalog import HELDOUT_SEED, generate_item

        other = get_user_model().objects.get_or_create(username="photo-lookup-new")[0]
        max_distance = conf.get("PHOTO_REUSE_MAX_DISTANCE")
        radius = core.band_radius(max_distance)
        times, read, found = [], [], []
        plan = ""
        for n in range(lookups):
            picture = generate_item(seed + n, seed=HELDOUT_SEED, size=256).image
            hashes = core.hash_variants(picture)
            clause = _lookup_clause(hashes, radius)
            read.append(ImageHash.objects.filter(clause).count())
            begun = time.perf_counter()
            found.append(
                len(
                    reuse_candidates(
                        hashes=hashes,
                        seller_id=other.pk,
                        listing_id=0,
                        now=timezone.now(),
                    )
                )
            )
            times.append(time.perf_counter() - begun)
            if n == 0:
                query = ImageHash.objects.filter(clause).values_list("image_id")
                if connection.vendor == "postgresql":
                    plan = query.explain(analyze=True, buffers=True)
                else:
                    plan = query.explain()
        self.stdout.write(
            f"Hamming cut-off {max_distance} (each band within {radius} bits): "
            f"{lookups} lookups, rows read through the band indexes: median "
            f"{statistics.median(read):,.0f}, max {max(read):,}; candidates within "
            f"the cut-off: {sum(found)}; time per lookup: median "
            f"{statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms"
        )
        self.stdout.write("query plan of the first lookup's index scans:")
        self.stdout.write(plan)
