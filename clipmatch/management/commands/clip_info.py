"""Show the active CLIP model, its version, device and thresholds."""

import json

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from clipmatch import conf
from clipmatch.inference.sources import ModelLoadError
from clipmatch.management.common import add_model_argument
from clipmatch.runtime import get_engine, resolve
from clipmatch.services import model_version_active, thresholds_for


class Command(BaseCommand):
    help = "Show the active CLIP model, its version, device and thresholds."

    def add_arguments(self, parser):
        add_model_argument(parser)
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON object."
        )
        parser.add_argument(
            "--no-load",
            action="store_true",
            help="Do not load the model (no device check).",
        )

    def handle(self, *args, **options):
        ref = options["model"]
        try:
            if ref:
                source = resolve(ref, hub=True)
                thresholds = thresholds_for(source)
                info = {"model": ref, "activated": False}
            else:
                # The activated version if there is one, else the settings' model.
                active = model_version_active(hub=True)
                source, thresholds = active.source, active.thresholds
                info = {
                    "model": source.ref,
                    "activated": active.version.is_active,
                    "threshold_version": (
                        active.threshold_version.pk
                        if active.threshold_version
                        else None
                    ),
                }
            info.update(
                {
                    "path": str(source.path),
                    "version": source.version,
                    "fingerprint": source.fingerprint,
                    "device_setting": conf.get("DEVICE"),
                    "thresholds": thresholds.as_dict(),
                    "metrics": source.meta.get("metrics", {}),
                }
            )
            if not options["no_load"]:
                engine = get_engine(source.ref, fingerprint=source.fingerprint)
                info["device"] = engine.device
                info["family"] = engine.family.name
                info["context_length"] = engine.context_length
        except (ModelLoadError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(info, indent=2))
            return
        for key, value in info.items():
            if isinstance(value, dict):
                value = json.dumps(value)
            self.stdout.write(f"{key:>15}: {value}")
