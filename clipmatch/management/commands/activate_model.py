"""Make a registered model version the one that scores, and rescore the catalog."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from clipmatch.inference.sources import ModelLoadError
from clipmatch.models import ModelVersion
from clipmatch.services import (
    ModelVersionError,
    model_version_activate,
    model_version_shadow,
)


class Command(BaseCommand):
    help = (
        "Activate a model version (by id or name@fingerprint): new scores use it, and "
        "the system-routed catalog is rescored in batches by the workers. Moderators' "
        "decisions are never overridden."
    )

    def add_arguments(self, parser):
        parser.add_argument("version", help="Its id or name@fingerprint.")
        parser.add_argument("--by", required=True, help="A staff username.")
        parser.add_argument(
            "--yes", action="store_true", help="Do not ask for confirmation."
        )
        parser.add_argument(
            "--shadow",
            action="store_true",
            help="Score in shadow instead: beside the active model, never routing.",
        )

    def handle(self, *args, **options):
        from clipmatch.selectors import model_version_lookup

        version = model_version_lookup(options["version"])
        if version is None:
            known = (
                ", ".join(f"{v.pk}: {v}" for v in ModelVersion.objects.all()[:10])
                or "none"
            )
            raise CommandError(
                f"No model version {options['version']!r} (known: {known})."
            )
        actor = get_user_model().objects.filter(username=options["by"]).first()
        if actor is None:
            raise CommandError(f"No user {options['by']!r}.")
        if options["shadow"]:
            try:
                model_version_shadow(version=version, actor=actor)
            except (ModelVersionError, ModelLoadError) as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(
                self.style.SUCCESS(
                    f"{version} scores in shadow; the catalog is queued for it."
                )
            )
            return
        if not options["yes"]:
            answer = input(f"Activate {version} and rescore the catalog? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                raise CommandError("Nothing changed.")
        try:
            model_version_activate(version=version, actor=actor)
        except (ModelVersionError, ModelLoadError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"{version} is active; a rescore of the catalog is queued."
            )
        )
