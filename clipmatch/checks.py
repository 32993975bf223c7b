"""System checks for settings whose combinations break scoring silently."""

from django.conf import settings
from django.core.checks import Error, register

from clipmatch import conf


@register()
def check_timeouts(app_configs=None, **kwargs):
    """A task must time out before django-q2 re-delivers it, and before the
    reconciler declares its worker dead."""
    cluster = getattr(settings, "Q_CLUSTER", {})
    timeout = cluster.get("timeout")
    errors = []
    if timeout is None:
        errors.append(
            Error(
                "Q_CLUSTER has no timeout: a hung scoring task would hold its worker.",
                id="clipmatch.E001",
            )
        )
        return errors
    retry = cluster.get("retry", 60)
    if timeout >= retry:
        errors.append(
            Error(
                f"Q_CLUSTER timeout ({timeout}s) must be below retry ({retry}s), or a "
                "task still running is handed to a second worker.",
                id="clipmatch.E002",
            )
        )
    stale = conf.get("SCORING_STALE_AFTER")
    if timeout >= stale:
        errors.append(
            Error(
                f"CLIPMATCH_SCORING_STALE_AFTER ({stale}s) must exceed the Q_CLUSTER "
                f"timeout ({timeout}s), or live workers are declared dead.",
                id="clipmatch.E003",
            )
        )
    return errors


@register()
def check_hub_timeout(app_configs=None, **kwargs):
    """A command's wait on the Hugging Face hub must be a positive number of
    seconds: zero or less would fail every first download at once."""
    value = conf.get("HUB_TIMEOUT")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return [
            Error(
                f"CLIPMATCH_HUB_TIMEOUT must be a positive number of seconds, not "
                f"{value!r}.",
                id="clipmatch.E004",
            )
        ]
    return []
