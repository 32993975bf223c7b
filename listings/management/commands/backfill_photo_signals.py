"""Compute the photo signals (perceptual hashes, quality findings) of images
stored before they existed, in batches; safe to re-run."""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from tqdm import tqdm

from listings.models import ListingImage
from listings.services.photos import image_signals_backfill


class Command(BaseCommand):
    help = (
        "Compute the perceptual hashes and quality findings of stored images that "
        "have none yet, or hash rows without the 256-bit hash (all of them with "
        "--all), in batches, with a progress bar. "
        "Re-running it does only what is left. Listings are not re-routed: their "
        "next scoring uses the stored signals."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--all", action="store_true", help="Recompute images that have them too."
        )
        parser.add_argument("--batch-size", type=int, default=200)
        parser.add_argument(
            "--dry-run", action="store_true", help="Count, change nothing."
        )

    def handle(self, *args, **options):
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        images = ListingImage.objects.order_by("pk")
        if not options["all"]:
            # Hash rows stored before the 256-bit hash existed lack it (migration
            # 0009 recomputed their bands, but the fine hash needs the picture).
            images = images.filter(
                Q(signals_at__isnull=True) | Q(hashes__fine__isnull=True)
            ).distinct()
        ids = list(images.values_list("pk", flat=True))
        if options["dry_run"]:
            self.stdout.write(f"{len(ids)} images would be computed.")
            return
        done = failed = 0
        size = options["batch_size"]
        with tqdm(total=len(ids), unit="image", file=self.stderr) as bar:
            for start in range(0, len(ids), size):
                batch = ListingImage.objects.filter(pk__in=ids[start : start + size])
                for image in batch.order_by("pk"):
                    if image_signals_backfill(image=image):
                        done += 1
                    else:
                        failed += 1
                    bar.update(1)
        self.stdout.write(
            f"Computed the photo signals of {done} images"
            + (f"; {failed} could not be read." if failed else ".")
        )
