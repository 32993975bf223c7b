"""Lazy access to the CLIPMATCH_API settings dict (limits of the API and webhooks)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "MAX_IMAGES_PER_LISTING": 8,
    "MAX_TITLE_LENGTH": 200,
    "MAX_DESCRIPTION_LENGTH": 5000,
    "MAX_WAIT_SECONDS": 30,
    "WEBHOOK_MAX_ATTEMPTS": 6,
    "WEBHOOK_RETRY_BACKOFF": 30,
    "WEBHOOK_TIMEOUT": 5,
    "WEBHOOK_SENDING_STALE_AFTER": 120,
    "WEBHOOK_ALLOW_PRIVATE_HOSTS": False,
}


def get(name: str) -> Any:
    """Return one CLIPMATCH_API setting, read from settings at call time."""
    if name not in DEFAULTS:
        raise KeyError(f"Unknown CLIPMATCH_API setting {name!r}")
    return getattr(settings, "CLIPMATCH_API", {}).get(name, DEFAULTS[name])
