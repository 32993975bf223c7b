"""Fine-tune the active (or a given) model on CSVs and/or moderators' decisions."""

import argparse
import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from clipmatch.inference.sources import ModelLoadError
from clipmatch.services import (
    ModelVersionError,
    model_version_active,
    model_version_register,
)
from training import finetune


class Command(BaseCommand):
    help = (
        "Fine-tune a CLIP model on labelled pairs (seed-format CSVs, moderators' "
        "decisions, or both), compare it with its base on validation and on a "
        "regression set, write a save_pretrained folder and a JSON report, and "
        "register it as a model version unless it did worse (--no-register skips)."
    )

    def add_arguments(self, parser):
        finetune.add_arguments(parser, base_required=False)
        parser.add_argument(
            "--from-decisions",
            action="store_true",
            help="Pairs from approvals (matches) and mismatch rejections; the newest "
            "--val-share of them validate.",
        )
        parser.add_argument("--val-share", type=float, default=0.25)
        parser.add_argument(
            "--register",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="Record the result as a model version (default) or not.",
        )
        parser.add_argument("--by", help="Username recorded as registering it.")
        parser.add_argument("--json", action="store_true", help="Print the report.")

    def handle(self, *args, **options):
        from clipmatch.selectors import model_version_lookup

        base = options["base"]
        if base:
            registered = model_version_lookup(base)
            if registered is not None:
                base = registered.source
        else:
            try:
                base = str(model_version_active().source.path)
            except (ModelLoadError, ImproperlyConfigured) as exc:
                raise CommandError(f"Cannot resolve the active model: {exc}") from exc
        actor = None
        if options["by"]:
            actor = get_user_model().objects.filter(username=options["by"]).first()
            if actor is None:
                raise CommandError(f"No user {options['by']!r}.")
        output = Path(options["output"])
        if options["from_decisions"]:
            train_csv, val_csv = self._decision_csvs(output, options["val_share"])
            options["train_csv"] = [*options["train_csv"], str(train_csv)]
            options["val_csv"] = [*options["val_csv"], str(val_csv)]
        try:
            config = finetune.config_from(options, base)
            report = finetune.finetune(
                config,
                resume=options["resume"],
                progress=options["verbosity"] > 0,
                log=self._log if options["verbosity"] > 0 else lambda _: None,
            )
        except finetune.FinetuneError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report))
        if not report["accepted"]:
            raise CommandError(
                "The fine-tuned model is worse than its base and is not registered: "
                + " ".join(report["refusals"])
            )
        if not options["register"]:
            self._log(f"Not registered (--no-register); the model is in {output}.")
            return
        try:
            version, created = model_version_register(
                path=str(output.resolve()), report=report, actor=actor
            )
        except (ModelVersionError, ModelLoadError) as exc:
            raise CommandError(str(exc)) from exc
        self._log(
            f"Registered {version} (id {version.pk})"
            + ("" if created else ", already known")
            + f". Activate it with: manage.py activate_model {version.pk} --by USER"
        )

    def _log(self, line: str) -> None:
        self.stdout.write(line)

    def _decision_csvs(self, output: Path, val_share: float) -> tuple[Path, Path]:
        """Seed-format CSVs of decided listings, split by time (newest validate)."""
        from clipmatch.inference.pairs import write_pairs
        from listings.labels import listings_labelled_by_decisions

        labelled = listings_labelled_by_decisions()
        if not 0 < val_share < 1:
            raise CommandError("--val-share must be between 0 and 1.")
        n_val = max(1, round(len(labelled) * val_share))
        train, val = labelled[:-n_val], labelled[-n_val:]
        for role, rows in (("training", train), ("validation", val)):
            labels = {r.label for r in rows}
            if labels != {0, 1}:
                raise CommandError(
                    f"The {role} share of the decisions ({len(rows)} listings, "
                    f"newest last) needs both approvals and mismatch rejections."
                )
        paths = []
        for name, rows in (("train", train), ("val", val)):
            pairs = []
            for r in rows:
                for image in r.image_paths:
                    for text in (r.title, r.description):
                        if text.strip():
                            pairs.append(
                                {
                                    "image_path": image,
                                    "text": text,
                                    "label": r.label,
                                    "category": r.category,
                                }
                            )
            paths.append(write_pairs(output / "data" / f"decisions-{name}.csv", pairs))
        self._log(
            f"From decisions: {len(train)} listings to train on (until "
            f"{train[-1].decided_at:%Y-%m-%d %H:%M}), {len(val)} newer to validate."
        )
        return paths[0], paths[1]
