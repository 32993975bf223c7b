"""The one reader of the CLIPMATCH and CLIPMATCH_API settings: lazy and validated.

The defaults live in config/settings/base.py and nowhere else; this module knows
which keys exist and what each value must be. The system checks (clipmatch.checks)
report every bad value at startup, and get() refuses one at the moment it is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from clipmatch.inference.engine import PRECISIONS
from clipmatch.inference.images import FORMAT_CONTENT_TYPES
from clipmatch.inference.scoring import Thresholds

DEVICES = ("auto", "cpu", "cuda")
QUEUE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,49}")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the settings: the system check id and what to fix."""

    id: str
    message: str
    hint: str = ""


@dataclass(frozen=True)
class Rule:
    """What one kind of value must be: `broken` says how a value fails, or None."""

    id: str
    broken: Callable[[Any], str | None]


def _whole(value: Any) -> bool:
    # True is an int to Python, never a count or a number of seconds to a person.
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return _whole(value) or isinstance(value, float)


def _positive_int(value: Any) -> str | None:
    if not (_whole(value) and value > 0):
        return f"must be a whole number above 0, not {value!r}"
    return None


def _count_or_zero(value: Any) -> str | None:
    if not (_whole(value) and value >= 0):
        return f"must be a whole number, 0 or more, not {value!r}"
    return None


def _positive_number(value: Any) -> str | None:
    if not (_number(value) and value > 0):
        return f"must be a number above 0, not {value!r}"
    return None


def _share(value: Any) -> str | None:
    if not (_number(value) and 0 <= value <= 1):
        return f"must be a number from 0 to 1, not {value!r}"
    return None


def _device(value: Any) -> str | None:
    if value not in DEVICES:
        return f"must be one of {', '.join(DEVICES)}, not {value!r}"
    return None


def _precision(value: Any) -> str | None:
    if value not in PRECISIONS:
        return f"must be one of {', '.join(PRECISIONS)}, not {value!r}"
    return None


def _flag(value: Any) -> str | None:
    if not isinstance(value, bool):
        return f"must be true or false, not {value!r}"
    return None


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, not {value!r}"
    return None


def _model(value: Any) -> str | None:
    if not (isinstance(value, str) and value.strip()):
        return (
            "must be a Hugging Face hub id or a local save_pretrained directory, "
            f"not {value!r}"
        )
    return None


def _thresholds(value: Any) -> str | None:
    # Empty means "the thresholds in the model's own clipmatch.json".
    if value == {}:
        return None
    if not isinstance(value, dict):
        return (
            f'must be a JSON object like {{"title": {{"pass": P, ...}}}}, not {value!r}'
        )
    try:
        Thresholds.from_dict(value)
    except ValueError as exc:
        return f"is not a set of thresholds: {str(exc).rstrip('.')}"
    top_k = value.get("category_top_k", 0)
    if not (_whole(top_k) and top_k >= 0):
        return f"has category_top_k {top_k!r}: it must be a whole number, 0 or more"
    return None


def _prompt_templates(value: Any) -> str | None:
    if not (isinstance(value, list | tuple) and value):
        return (
            'must be a list of at least one prompt with "{}" where the category\'s '
            f"name goes, not {value!r}"
        )
    for template in value:
        # What clipmatch.services.category_vectors does with each template.
        try:
            filled = str(template).format("\0", category="\0")
        except (IndexError, KeyError, ValueError):
            filled = ""
        if not isinstance(template, str) or "\0" not in filled:
            return (
                'must hold prompts with "{}" (or "{category}") where the category\'s '
                f"name goes; {template!r} is not one"
            )
    return None


def _reject_reasons(value: Any) -> str | None:
    shape = 'must be a list of [code, label] pairs, one of them "other"'
    if not isinstance(value, list | tuple):
        return f"{shape}, not {value!r}"
    codes = []
    for pair in value:
        if not (
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and all(isinstance(part, str) and part.strip() for part in pair)
        ):
            return f"{shape}; {pair!r} is not a pair of a code and a label"
        if pair[0] in codes:
            return f"lists the code {pair[0]!r} twice"
        codes.append(pair[0])
    if "other" not in codes:
        return (
            f'{shape}: a moderator whose reason is not listed picks "other" and '
            "writes a note"
        )
    return None


def _image_formats(value: Any) -> str | None:
    known = ", ".join(FORMAT_CONTENT_TYPES)
    if not (isinstance(value, list | tuple) and value):
        return f"must list at least one of {known}, not {value!r}"
    for name in value:
        # Only these have a file extension and a content type to serve them with.
        if not (isinstance(name, str) and name.upper() in FORMAT_CONTENT_TYPES):
            return f"may only list {known}; {name!r} is not one"
    return None


def _currency(value: Any) -> str | None:
    if not (isinstance(value, str) and re.fullmatch(r"[A-Z]{3}", value)):
        return f"must be a three-letter ISO 4217 code such as EUR, not {value!r}"


def _queue_name(value: Any) -> str | None:
    if not (isinstance(value, str) and QUEUE_NAME.fullmatch(value)):
        return (
            "must be 1 to 50 lowercase letters, digits and dashes (a django-q2 "
            f"queue name), not {value!r}"
        )
    return None


PHOTO_ACTIONS = ("advise", "review")


def _photo_action(value: Any) -> str | None:
    if value not in PHOTO_ACTIONS:
        return f"must be one of {', '.join(PHOTO_ACTIONS)}, not {value!r}"
    return None


def _grey_level(value: Any) -> str | None:
    if not (_number(value) and 0 <= value <= 255):
        return f"must be a grey level from 0 to 255, not {value!r}"
    return None


def _non_negative(value: Any) -> str | None:
    if not (_number(value) and value >= 0):
        return f"must be a number, 0 or more, not {value!r}"
    return None


def _hash_distance(value: Any) -> str | None:
    # The lookup searches each 21- or 22-bit band within distance // 3 bits: up to
    # 1,794 values a band at 11; at 12 it would be 27,000 and more.
    if not (_whole(value) and 0 <= value <= 11):
        return f"must be a whole number of bits from 0 to 11, not {value!r}"
    return None


def _fine_distance(value: Any) -> str | None:
    if not (_whole(value) and 0 <= value <= 256):
        return f"must be a whole number of bits from 0 to 256, not {value!r}"
    return None


MISSING = "clipmatch.E010"
UNKNOWN = "clipmatch.E011"
POSITIVE_INT = Rule("clipmatch.E012", _positive_int)
COUNT_OR_ZERO = Rule("clipmatch.E013", _count_or_zero)
POSITIVE_NUMBER = Rule("clipmatch.E014", _positive_number)
SHARE = Rule("clipmatch.E015", _share)
DEVICE = Rule("clipmatch.E016", _device)
FLAG = Rule("clipmatch.E017", _flag)
MODEL = Rule("clipmatch.E018", _model)
THRESHOLDS = Rule("clipmatch.E019", _thresholds)
PROMPT_TEMPLATES = Rule("clipmatch.E020", _prompt_templates)
REJECT_REASONS = Rule("clipmatch.E021", _reject_reasons)
IMAGE_FORMATS = Rule("clipmatch.E022", _image_formats)
TEXT = Rule("clipmatch.E023", _text)
CURRENCY = Rule("clipmatch.E024", _currency)
QUEUE = Rule("clipmatch.E025", _queue_name)
PHOTO_ACTION = Rule("clipmatch.E026", _photo_action)
GREY_LEVEL = Rule("clipmatch.E027", _grey_level)
HASH_DISTANCE = Rule("clipmatch.E028", _hash_distance)
NON_NEGATIVE = Rule("clipmatch.E029", _non_negative)
PRECISION = Rule("clipmatch.E030", _precision)
FINE_DISTANCE = Rule("clipmatch.E031", _fine_distance)


@dataclass(frozen=True)
class Setting:
    """One key of settings.CLIPMATCH or settings.CLIPMATCH_API."""

    group: str
    key: str
    env: str  # the variable config/settings/base.py reads it from; "" for none
    rule: Rule

    @property
    def label(self) -> str:
        """The name an operator sets: the environment variable, else the key."""
        return self.env or f'{self.group}["{self.key}"]'

    def problem(self) -> Problem | None:
        values = getattr(settings, self.group, None)
        if not isinstance(values, dict):
            return Problem(
                MISSING,
                f"settings.{self.group} must be a dict with the keys that "
                f"config/settings/base.py sets, not {values!r}.",
            )
        if self.key not in values:
            return Problem(
                MISSING,
                f"settings.{self.group} has no {self.key!r}: config/settings/base.py "
                "sets every key, and a settings module that replaces the dict must "
                "keep them all.",
            )
        broken = self.rule.broken(values[self.key])
        if not broken:
            return None
        source = f" from the environment variable {self.env}" if self.env else ""
        return Problem(
            self.rule.id,
            f"{self.label} {broken}.",
            hint=f'Read from settings.{self.group}["{self.key}"], which '
            f"config/settings/base.py sets{source}.",
        )


def _table(group: str, rows: list[tuple[str, str, Rule]]) -> dict[str, Setting]:
    return {key: Setting(group, key, env, rule) for key, env, rule in rows}


# Keys are unique across the two dicts, so callers name a key and never its dict.
SETTINGS: dict[str, Setting] = {
    **_table(
        "CLIPMATCH",
        [
            ("MODEL", "CLIPMATCH_MODEL", MODEL),
            ("DEVICE", "CLIPMATCH_DEVICE", DEVICE),
            ("PRECISION", "CLIPMATCH_PRECISION", PRECISION),
            ("THRESHOLDS", "CLIPMATCH_THRESHOLDS", THRESHOLDS),
            ("CATEGORY_TOP_K", "CLIPMATCH_CATEGORY_TOP_K", COUNT_OR_ZERO),
            ("PROMPT_TEMPLATES", "", PROMPT_TEMPLATES),
            ("AUDIT_RATE", "CLIPMATCH_AUDIT_RATE", SHARE),
            ("BATCH_SIZE", "CLIPMATCH_BATCH_SIZE", POSITIVE_INT),
            ("TORCH_THREADS", "CLIPMATCH_TORCH_THREADS", POSITIVE_INT),
            ("HUB_TIMEOUT", "CLIPMATCH_HUB_TIMEOUT", POSITIVE_NUMBER),
            ("MAX_IMAGE_PIXELS", "CLIPMATCH_MAX_IMAGE_PIXELS", POSITIVE_INT),
            ("MAX_IMAGE_BYTES", "CLIPMATCH_MAX_IMAGE_BYTES", POSITIVE_INT),
            (
                "MAX_IMAGE_DECODE_BYTES",
                "CLIPMATCH_MAX_IMAGE_DECODE_BYTES",
                POSITIVE_INT,
            ),
            ("IMAGE_FORMATS", "", IMAGE_FORMATS),
            ("SCORING_MAX_ATTEMPTS", "CLIPMATCH_SCORING_MAX_ATTEMPTS", POSITIVE_INT),
            (
                "SCORING_BATCH_LISTINGS",
                "CLIPMATCH_SCORING_BATCH_LISTINGS",
                POSITIVE_INT,
            ),
            ("SCORING_RETRY_BACKOFF", "CLIPMATCH_SCORING_RETRY_BACKOFF", COUNT_OR_ZERO),
            ("SCORING_STALE_AFTER", "CLIPMATCH_SCORING_STALE_AFTER", POSITIVE_INT),
            (
                "RECONCILE_EVERY_MINUTES",
                "CLIPMATCH_RECONCILE_EVERY_MINUTES",
                POSITIVE_INT,
            ),
            ("REVIEW_LEASE_SECONDS", "CLIPMATCH_REVIEW_LEASE_SECONDS", POSITIVE_INT),
            ("REVIEW_AGING_HOURS", "CLIPMATCH_REVIEW_AGING_HOURS", POSITIVE_NUMBER),
            (
                "REVIEW_SKIP_COOLDOWN_SECONDS",
                "CLIPMATCH_REVIEW_SKIP_COOLDOWN_SECONDS",
                COUNT_OR_ZERO,
            ),
            ("REJECT_REASONS", "", REJECT_REASONS),
            ("PRELOAD_MODEL", "CLIPMATCH_PRELOAD_MODEL", FLAG),
            ("METRICS_TOKEN", "CLIPMATCH_METRICS_TOKEN", TEXT),
            ("METRICS_ALLOW_PRIVATE", "CLIPMATCH_METRICS_ALLOW_PRIVATE", FLAG),
            ("REVIEW_UNDO_SECONDS", "CLIPMATCH_REVIEW_UNDO_SECONDS", COUNT_OR_ZERO),
            ("CURRENCY", "CLIPMATCH_CURRENCY", CURRENCY),
            (
                "PHOTO_REUSE_MAX_DISTANCE",
                "CLIPMATCH_PHOTO_REUSE_MAX_DISTANCE",
                HASH_DISTANCE,
            ),
            ("PHOTO_REUSE_MIN_COSINE", "CLIPMATCH_PHOTO_REUSE_MIN_COSINE", SHARE),
            (
                "PHOTO_REUSE_FINE_DISTANCE",
                "CLIPMATCH_PHOTO_REUSE_FINE_DISTANCE",
                FINE_DISTANCE,
            ),
            (
                "PHOTO_REUSE_RECENT_DAYS",
                "CLIPMATCH_PHOTO_REUSE_RECENT_DAYS",
                POSITIVE_INT,
            ),
            ("PHOTO_MIN_SIDE", "CLIPMATCH_PHOTO_MIN_SIDE", POSITIVE_INT),
            ("PHOTO_MIN_SHARPNESS", "CLIPMATCH_PHOTO_MIN_SHARPNESS", NON_NEGATIVE),
            ("PHOTO_DARK_BELOW", "CLIPMATCH_PHOTO_DARK_BELOW", GREY_LEVEL),
            ("PHOTO_BRIGHT_ABOVE", "CLIPMATCH_PHOTO_BRIGHT_ABOVE", GREY_LEVEL),
            (
                "PHOTO_BLANK_CONTRAST_BELOW",
                "CLIPMATCH_PHOTO_BLANK_CONTRAST_BELOW",
                NON_NEGATIVE,
            ),
            ("PHOTO_TOO_SMALL", "CLIPMATCH_PHOTO_TOO_SMALL", PHOTO_ACTION),
            ("PHOTO_BLURRED", "CLIPMATCH_PHOTO_BLURRED", PHOTO_ACTION),
            ("PHOTO_TOO_DARK", "CLIPMATCH_PHOTO_TOO_DARK", PHOTO_ACTION),
            ("PHOTO_TOO_BRIGHT", "CLIPMATCH_PHOTO_TOO_BRIGHT", PHOTO_ACTION),
            ("PHOTO_NEARLY_BLANK", "CLIPMATCH_PHOTO_NEARLY_BLANK", PHOTO_ACTION),
        ],
    ),
    **_table(
        "CLIPMATCH_API",
        [
            ("MAX_IMAGES_PER_LISTING", "CLIPMATCH_API_MAX_IMAGES", POSITIVE_INT),
            ("MAX_TITLE_LENGTH", "CLIPMATCH_API_MAX_TITLE_LENGTH", POSITIVE_INT),
            (
                "MAX_DESCRIPTION_LENGTH",
                "CLIPMATCH_API_MAX_DESCRIPTION_LENGTH",
                POSITIVE_INT,
            ),
            ("MAX_WAIT_SECONDS", "CLIPMATCH_API_MAX_WAIT", COUNT_OR_ZERO),
            (
                "IDEMPOTENCY_KEY_HOURS",
                "CLIPMATCH_API_IDEMPOTENCY_KEY_HOURS",
                POSITIVE_INT,
            ),
            ("WEBHOOK_MAX_ATTEMPTS", "CLIPMATCH_WEBHOOK_MAX_ATTEMPTS", POSITIVE_INT),
            ("WEBHOOK_RETRY_BACKOFF", "CLIPMATCH_WEBHOOK_RETRY_BACKOFF", COUNT_OR_ZERO),
            ("WEBHOOK_TIMEOUT", "CLIPMATCH_WEBHOOK_TIMEOUT", POSITIVE_INT),
            (
                "WEBHOOK_SENDING_STALE_AFTER",
                "CLIPMATCH_WEBHOOK_STALE_AFTER",
                POSITIVE_INT,
            ),
            ("WEBHOOK_QUEUE", "CLIPMATCH_WEBHOOK_QUEUE", QUEUE),
            ("WEBHOOK_MAX_ENDPOINTS", "CLIPMATCH_WEBHOOK_MAX_ENDPOINTS", POSITIVE_INT),
            (
                "WEBHOOK_ALLOW_PRIVATE_HOSTS",
                "CLIPMATCH_WEBHOOK_ALLOW_PRIVATE_HOSTS",
                FLAG,
            ),
            ("MEDIA_ACCEL_REDIRECT", "CLIPMATCH_MEDIA_ACCEL_REDIRECT", TEXT),
        ],
    ),
}
GROUPS = ("CLIPMATCH", "CLIPMATCH_API")


def get(name: str) -> Any:
    """Return one setting, read from settings at call time, or ImproperlyConfigured."""
    if name not in SETTINGS:
        raise KeyError(f"Unknown clipmatch setting {name!r}")
    setting = SETTINGS[name]
    problem = setting.problem()
    if problem:
        raise ImproperlyConfigured(problem.message)
    return getattr(settings, setting.group)[name]


def get_or_none(name: str) -> Any:
    """The value when it is valid, else None: for checks that compare two settings
    and leave a bad value to the check that reports it."""
    try:
        return get(name)
    except ImproperlyConfigured:
        return None


def problems() -> list[Problem]:
    """Everything wrong with both settings dicts, unknown keys included."""
    found = []
    for group in GROUPS:
        values = getattr(settings, group, None)
        known = [s.key for s in SETTINGS.values() if s.group == group]
        extra = set(values) - set(known) if isinstance(values, dict) else set()
        for key in sorted(extra):
            found.append(
                Problem(
                    UNKNOWN,
                    f"settings.{group} has an unknown key {key!r}; the keys are "
                    f"{', '.join(known)}.",
                )
            )
    reported = set()
    for setting in SETTINGS.values():
        problem = setting.problem()
        # A missing or broken dict is one problem, not one per key.
        if problem and problem not in reported:
            reported.add(problem)
            found.append(problem)
    return found
