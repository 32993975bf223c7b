"""Count the verdicts a precision changes against fp32 on the stored listings."""

import json

from django.core.management.base import BaseCommand, CommandError

from clipmatch.inference.engine import PRECISIONS
from listings.services.precision import precision_compare


class Command(BaseCommand):
    help = (
        "Score every stored listing (or --ids) with the model in force at fp32 and "
        "at --precision (default: CLIPMATCH_PRECISION as this machine resolves it) "
        "and report how many verdicts differ. Writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--precision", choices=PRECISIONS, default=None)
        parser.add_argument("--reference", choices=PRECISIONS[1:], default="fp32")
        parser.add_argument("--ids", type=int, nargs="*", default=None)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        from clipmatch import runtime
        from clipmatch.inference.engine import pick_device, pick_precision
        from clipmatch.inference.sources import ModelLoadError

        try:
            precision = (
                pick_precision(options["precision"], pick_device("auto"))
                if options["precision"]
                else runtime.precision()
            )
        except ModelLoadError as exc:
            raise CommandError(str(exc)) from exc
        report = precision_compare(
            precision=precision,
            reference=options["reference"],
            listing_ids=options["ids"],
        )
        figures = {
            "model": report.model,
            "reference": report.reference,
            "precision": report.precision,
            "listings": report.listings,
            "changed": len(report.changed),
            "changed_share": round(report.changed_share, 4),
            "changed_ids": report.changed,
            "max_similarity_delta": round(report.max_similarity_delta, 5),
            "mean_similarity_delta": round(report.mean_similarity_delta, 5),
        }
        if options["json"]:
            self.stdout.write(json.dumps(figures))
            return
        self.stdout.write(
            f"{report.model}: {len(report.changed)} of {report.listings} verdicts "
            f"differ at {report.precision} against {report.reference} "
            f"({report.changed_share:.2%}); worst-similarity delta mean "
            f"{report.mean_similarity_delta:.5f}, "
            f"max {report.max_similarity_delta:.5f}."
        )
