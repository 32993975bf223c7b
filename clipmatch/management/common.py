"""What the model commands share: the --model option and loading it for a person."""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from clipmatch import conf
from clipmatch.engine import ClipEngine, ModelLoadError, get_engine
from clipmatch.scoring import Thresholds
from clipmatch.services import thresholds_for


def add_model_argument(parser) -> None:
    parser.add_argument(
        "--model", help="A hub id or directory instead of the active one."
    )


def engine_and_thresholds(ref: str | None) -> tuple[ClipEngine, Thresholds]:
    """Load the given (or active) model; a failure is a CommandError, not a trace."""
    try:
        engine = get_engine(ref or conf.get("MODEL"))
        return engine, thresholds_for(engine.source)
    except (ModelLoadError, ImproperlyConfigured) as exc:
        raise CommandError(str(exc)) from exc
