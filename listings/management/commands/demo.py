"""Seed a demo catalog, score it through the real task queue, print a summary."""

import json
import logging
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from listings.demo import demo_plant_photos, demo_seed, demo_summary
from listings.models import Listing
from listings.workers import qcluster_start, qcluster_stop


class Command(BaseCommand):
    help = (
        "Seed synthetic listings (some with planted mismatches: wrong category, wrong "
        "colour, a photo of something else), score them with a qcluster worker, and "
        "print how many passed, went to review or were held, and how many plants "
        "were caught."
    )

    def add_arguments(self, parser):
        parser.add_argument("--listings", type=int, default=60)
        parser.add_argument("--mismatch-rate", type=float, default=0.3)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument(
            "--reused-photos",
            type=int,
            default=4,
            help="Listings planted with a photo lifted from another seller's.",
        )
        parser.add_argument(
            "--unusable-photos",
            type=int,
            default=4,
            help="Listings planted with a photo too small, dark, blurred or blank.",
        )
        parser.add_argument("--timeout", type=int, default=300, help="Seconds to wait.")
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="Do not start a worker: one is already running.",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON object."
        )

    def handle(self, *args, **options):
        # One "Enqueued" line per listing would bury the summary.
        logging.getLogger("django-q").setLevel(logging.WARNING)
        if options["listings"] < 1:
            raise CommandError("--listings must be at least 1.")
        seeded = demo_seed(
            count=options["listings"],
            mismatch_rate=options["mismatch_rate"],
            seed=options["seed"],
        )
        if not options["json"]:
            self.stdout.write(
                f"Seeded {len(seeded)} listings; scoring them in the queue..."
            )
        worker = None if options["no_worker"] else qcluster_start()
        try:
            self._wait([s.listing_id for s in seeded], options["timeout"])
            # Only now: a lifted photo is found among photos already scored.
            planted = demo_plant_photos(
                seeded,
                reused=options["reused_photos"],
                unusable=options["unusable_photos"],
                seed=options["seed"],
            )
            self._wait([s.listing_id for s in planted], options["timeout"])
        finally:
            if worker is not None:
                qcluster_stop(worker, grace=30)
        summary = demo_summary(seeded + planted)
        if options["json"]:
            self.stdout.write(json.dumps(summary))
            return
        planted = summary["planted_mismatches"]
        honest = (
            summary["listings"]
            - planted
            - summary["planted_reused"]
            - summary["planted_unusable"]
        )
        self.stdout.write(
            f"passed {summary['passed']}, review {summary['review']}, held "
            f"{summary['held']}, failed {summary['failed']}, still pending "
            f"{summary['pending']} (audit samples: {summary['audit_samples']})"
        )
        self.stdout.write(
            f"caught {summary['caught']} of {planted} planted mismatches; flagged "
            f"{summary['honest_flagged']} of {honest} honest listings"
        )
        self.stdout.write(
            f"caught {summary['reused_caught']} of {summary['planted_reused']} "
            "photos reused from another seller; found a quality problem in "
            f"{summary['unusable_caught']} of {summary['planted_unusable']} "
            "unusable photos"
        )

    def _wait(self, ids: list[int], timeout: int) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            close_old_connections()
            pending = Listing.objects.filter(
                pk__in=ids, status=Listing.Status.PENDING
            ).count()
            if not pending:
                return
            time.sleep(0.5)
        self.stderr.write(f"Timed out after {timeout}s with listings still pending.")
