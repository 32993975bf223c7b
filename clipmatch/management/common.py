"""What the model commands share: the --model option and loading it for a person."""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from clipmatch.inference.engine import ClipEngine
from clipmatch.inference.scoring import Thresholds
from clipmatch.inference.sources import ModelLoadError
from clipmatch.runtime import get_engine
from clipmatch.services import model_version_active, source_for_version, thresholds_for


def add_model_argument(parser) -> None:
    parser.add_argument(
        "--model",
        help="A hub id, a directory, or a registered version (its id or "
        "name@fingerprint) instead of the active model.",
    )


def engine_and_thresholds(ref: str | None) -> tuple[ClipEngine, Thresholds]:
    """Load the given (or active) model; a failure is a CommandError, not a trace."""
    from clipmatch.selectors import model_version_lookup

    try:
        registered = model_version_lookup(ref) if ref else None
        if registered is not None:
            source = source_for_version(registered)
            engine = get_engine(source.ref, fingerprint=source.fingerprint)
            return engine, Thresholds.from_dict(registered.thresholds)
        if ref:
            engine = get_engine(ref, hub=True)
            return engine, thresholds_for(engine.source)
        active = model_version_active(hub=True)
        return active.engine(), active.thresholds
    except (ModelLoadError, ImproperlyConfigured, ValueError) as exc:
        raise CommandError(str(exc)) from exc
