"""Measure the reused-photo lookup among many stored hashes, on this database."""

import re
import statistics
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from clipmatch import conf
from clipmatch.inference import photos as core
from listings.models import Category, ImageHash, Listing, ListingImage
from listings.services.photos import candidate_rows, lookup_sql, reuse_candidates

BENCH_SELLER = "photo-lookup-benchmark"


# Each row's bands are computed from its hash as `core.bands` does (and migration
# 0009), in SQL.
_BANDS = "(h >> 43) & 2097151, (h >> 22) & 2097151, h & 4194303"
_FILL = {
    "sqlite": (
        "WITH RECURSIVE v(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM v WHERE n < %s), "
        "r AS MATERIALIZED (SELECT i.id AS image_id, v.n AS variant, random() AS h "
        "FROM listings_listingimage i, v) "
        "INSERT INTO listings_imagehash "
        "(image_id, variant, phash, band0, band1, band2, fine) "
        f"SELECT image_id, variant, h, {_BANDS}, randomblob(32) FROM r"
    ),
    "postgresql": (
        "WITH r AS MATERIALIZED (SELECT i.id AS image_id, v.n AS variant, "
        "(floor(random() * 4294967296)::bigint << 32) "
        "| floor(random() * 4294967296)::bigint AS h "
        "FROM listings_listingimage i, generate_series(0, %s) AS v(n)) "
        "INSERT INTO listings_imagehash "
        "(image_id, variant, phash, band0, band1, band2, fine) "
        f"SELECT image_id, variant, h, {_BANDS}, "
        "decode(md5(random()::text) || md5(random()::text), 'hex') FROM r"
    ),
}


class Command(BaseCommand):
    help = (
        "Fill a scratch database of its own (dropped at the end) with --rows "
        "stored photo hashes (random 64-bit and 256-bit values drawn by the "
        f"database, {len(core.CROP_VARIANTS)} per image as the app stores them), "
        "then look up catalog photos as a new "
        "listing's would be: rows read through the band indexes, the query plan, "
        "and the time per lookup."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=1_000_000)
        parser.add_argument("--lookups", type=int, default=20)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options):
        if options["rows"] < len(core.CROP_VARIANTS):
            raise CommandError(f"--rows must be at least {len(core.CROP_VARIANTS)}.")
        # A scratch database of its own beside the configured one (Django's test
        # database machinery, under a name no test run uses: <NAME>_photo_lookup
        # on PostgreSQL, a file under var/ on SQLite), migrated, and dropped at
        # the end whatever happens.
        if connection.vendor == "sqlite":
            scratch = str(settings.BASE_DIR / "var" / "benchmark-photo-lookup.sqlite3")
        else:
            scratch = f"{connection.settings_dict['NAME']}_photo_lookup"
        connection.settings_dict.setdefault("TEST", {})["NAME"] = scratch
        original = connection.settings_dict["NAME"]
        connection.creation.create_test_db(verbosity=0, autoclobber=True)
        try:
            self._fill(options["rows"])
            stored = ImageHash.objects.count()
            self.stdout.write(f"{connection.vendor}: {stored:,} stored hashes")
            self._measure(options["lookups"], options["seed"])
        finally:
            connection.creation.destroy_test_db(original, verbosity=0)

    def _fill(self, rows: int) -> None:
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
                count = min(5000, images_needed - made)
                ListingImage.objects.bulk_create(
                    [
                        ListingImage(
                            listing=listing,
                            image=f"benchmark/{made + n}.png",
                            content_hash=f"{made + n:064x}",
                            position=n,
                        )
                        for n in range(count)
                    ],
                    batch_size=1000,
                )
            made += count
        # The hash rows are drawn by the database itself, one INSERT ... SELECT:
        # a million rows through the ORM took 26 minutes here.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_FILL[connection.vendor], [per_image - 1])
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
        reverse = core.band_radius(core.reverse_distance(max_distance))
        times, read, found = [], [], []
        plan = ""
        for n in range(lookups):
            picture = generate_item(seed + n, seed=HELDOUT_SEED, size=256).image
            hashes = core.photo_hashes(picture)
            sql, params = lookup_sql(hashes.coarse, max_distance)
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT count(*) FROM ({sql}) AS found", params)
                read.append(cursor.fetchone()[0])
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
                with connection.cursor() as cursor:
                    explain = (
                        "EXPLAIN (ANALYZE, BUFFERS) "
                        if connection.vendor == "postgresql"
                        else "EXPLAIN QUERY PLAN "
                    )
                    cursor.execute(explain + sql, params)
                    plan = "\n".join(" ".join(map(str, row)) for row in cursor)
                full = candidate_rows(
                    hashes=hashes,
                    seller_id=other.pk,
                    listing_id=0,
                    now=timezone.now(),
                    max_distance=max_distance,
                )
                if connection.vendor == "postgresql":
                    full_plan = full.explain(analyze=True)
                else:
                    full_plan = full.explain()
        self.stdout.write(
            f"Hamming cut-off {max_distance} (each of the {core.BANDS} bands within "
            f"{radius} bits, a new crop's within {reverse}): "
            f"{lookups} lookups, rows read through the band indexes: median "
            f"{statistics.median(read):,.0f}, max {max(read):,}; candidates within "
            f"the cut-off: {sum(found)}; time per lookup: median "
            f"{statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms"
        )
        self.stdout.write("query plan of the first lookup's index scans:")
        self.stdout.write(_abridged(plan))
        self.stdout.write("and of the whole lookup (with who may be found):")
        self.stdout.write(_abridged(full_plan))


def _abridged(plan: str) -> str:
    """A plan with its band value lists left out (thousands of numbers each)."""
    return re.sub(
        r"'\{[0-9,]+\}'", "'{...}'", re.sub(r'\["?\[[0-9, ]+\]"?\]', "[...]", plan)
    )
