"""Lazy access to the CLIPMATCH settings dict, with clear errors."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    "MODEL": "",
    "DEVICE": "auto",
    "THRESHOLDS": {},
    "CATEGORY_TOP_K": 0,
    "PROMPT_TEMPLATES": ["a photo of a {}."],
    "AUDIT_RATE": 0.0,
    "BATCH_SIZE": 32,
    "TORCH_THREADS": 1,
    "HUB_TIMEOUT": 10.0,
    "MAX_IMAGE_PIXELS": 40_000_000,
    "MAX_IMAGE_BYTES": 15 * 1024 * 1024,
    "IMAGE_FORMATS": ["JPEG", "MPO", "PNG", "WEBP", "GIF"],
    "SCORING_MAX_ATTEMPTS": 3,
    "SCORING_RETRY_BACKOFF": 30,
    "SCORING_STALE_AFTER": 300,
    "RECONCILE_EVERY_MINUTES": 1,
    "REVIEW_LEASE_SECONDS": 300,
    "REVIEW_AGING_HOURS": 24.0,
    "REVIEW_SKIP_COOLDOWN_SECONDS": 900,
    "REJECT_REASONS": [
        ["wrong_image", "Wrong image"],
        ["wrong_category", "Wrong category"],
        ["misleading_description", "Misleading description"],
        ["prohibited", "Prohibited item"],
        ["other", "Other (write a note)"],
    ],
}

DEVICES = ("auto", "cpu", "cuda")


def get(name: str) -> Any:
    """Return one CLIPMATCH setting, read from settings at call time."""
    if name not in DEFAULTS:
        raise KeyError(f"Unknown CLIPMATCH setting {name!r}")
    value = getattr(settings, "CLIPMATCH", {}).get(name, DEFAULTS[name])
    if name == "MODEL" and not value:
        raise ImproperlyConfigured(
            "CLIPMATCH['MODEL'] is empty: set CLIPMATCH_MODEL to a Hugging Face hub id "
            "or a local save_pretrained directory."
        )
    if name == "DEVICE" and value not in DEVICES:
        raise ImproperlyConfigured(
            f"CLIPMATCH_DEVICE must be one of {', '.join(DEVICES)}, not {value!r}."
        )
    return value
