"""Score listings again with the active model and thresholds, in batches."""

import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from clipmatch.inference.sources import ModelLoadError
from clipmatch.services import model_version_active
from listings.selectors import listings_for_rescore
from listings.services.rescoring import listings_rescore


class Command(BaseCommand):
    help = (
        "Rescore system-routed listings (pending, passed, review, held) with the "
        "active "
        "model and thresholds. Approved and rejected listings are never touched. "
        "Embeddings are cached, so a threshold change runs no model; listings are "
        "re-routed set by set, with bulk reads and writes."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--all", action="store_true", help="Every system-routed listing."
        )
        which.add_argument(
            "--stale",
            action="store_true",
            help="Only those scored by another model, other thresholds, or not at all.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count, change nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=500,
            help="Listings read, scored and written per transaction.",
        )

    def handle(self, *args, **options):
        try:
            active = model_version_active()
        except (ModelLoadError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from exc
        ids = list(
            listings_for_rescore(
                active=active, stale_only=options["stale"]
            ).values_list("pk", flat=True)
        )
        self.stdout.write(f"{len(ids)} listing(s) to rescore with {active.version}.")
        if options["dry_run"] or not ids:
            return
        outcomes: dict[str, int] = {}
        batch = max(1, options["batch_size"])
        with tqdm(
            total=len(ids),
            unit="listing",
            file=sys.stderr,
            disable=options["verbosity"] == 0,
        ) as bar:
            for start in range(0, len(ids), batch):
                chunk = ids[start : start + batch]
                done = listings_rescore(listing_ids=chunk, active=active)
                for name, count in done.items():
                    outcomes[name] = outcomes.get(name, 0) + count
                bar.update(len(chunk))
        summary = ", ".join(f"{n} {name}" for name, n in sorted(outcomes.items()))
        self.stdout.write(self.style.SUCCESS(f"Done: {summary}."))
