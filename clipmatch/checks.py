"""System checks: every CLIPMATCH and CLIPMATCH_API value, and the combinations that
break scoring or webhooks silently.

Ids: E001-E008 combinations (below); E010 a key or a whole dict missing, E011 an
unknown key, E012-E030 one kind of value each (clipmatch.conf names them).
"""

from django.conf import settings
from django.core.checks import Error, register

from clipmatch import conf


@register()
def check_settings(app_configs=None, **kwargs):
    """Each value on its own: types, ranges, choices and shapes."""
    return [
        Error(problem.message, hint=problem.hint or None, id=problem.id)
        for problem in conf.problems()
    ]


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
    # A bad value on its own is check_settings' to report, not a crash here.
    stale = conf.get_or_none("SCORING_STALE_AFTER")
    if stale is not None and timeout >= stale:
        errors.append(
            Error(
                f"CLIPMATCH_SCORING_STALE_AFTER ({stale}s) must exceed the Q_CLUSTER "
                f"timeout ({timeout}s), or live workers are declared dead.",
                id="clipmatch.E003",
            )
        )
    return errors


@register()
def check_webhook_timeouts(app_configs=None, **kwargs):
    """A sender still waiting for an answer must not look dead to the dispatcher."""
    timeout = conf.get_or_none("WEBHOOK_TIMEOUT")
    stale = conf.get_or_none("WEBHOOK_SENDING_STALE_AFTER")
    if timeout is None or stale is None or stale > timeout:
        return []
    return [
        Error(
            f"CLIPMATCH_WEBHOOK_STALE_AFTER ({stale}s) must exceed "
            f"CLIPMATCH_WEBHOOK_TIMEOUT ({timeout}s), or a delivery still waiting "
            "for its answer is claimed and sent again.",
            id="clipmatch.E004",
        )
    ]


LOG_FORMATS = ("plain", "json")


@register()
def check_log_format(app_configs=None, **kwargs):
    """A typo in LOG_FORMAT would otherwise log plain lines to a JSON pipeline."""
    value = getattr(settings, "LOG_FORMAT", "plain")
    if value in LOG_FORMATS:
        return []
    return [
        Error(
            f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {value!r}.",
            id="clipmatch.E005",
        )
    ]


@register()
def check_webhook_queue(app_configs=None, **kwargs):
    """Webhooks on the scoring cluster's own queue would wait behind scoring and
    delay it again: the point of the separate queue."""
    queue = conf.get_or_none("WEBHOOK_QUEUE")
    name = getattr(settings, "Q_CLUSTER", {}).get("name")
    if queue is None or queue != name:
        return []
    return [
        Error(
            f"CLIPMATCH_WEBHOOK_QUEUE ({queue!r}) must differ from the Q_CLUSTER name "
            f"({name!r}), or webhook tasks share the scoring queue.",
            id="clipmatch.E006",
        )
    ]


@register()
def check_photo_limits(app_configs=None, **kwargs):
    """The worker decodes a photo reduced to no less than DECODE_MIN_SIDE on its
    shorter side, and judges "too small" on that copy: a larger minimum would
    call every large photo small. Dark must start below bright."""
    from clipmatch.images import DECODE_MIN_SIDE

    errors = []
    side = conf.get_or_none("PHOTO_MIN_SIDE")
    if side is not None and side > DECODE_MIN_SIDE:
        errors.append(
            Error(
                f"CLIPMATCH_PHOTO_MIN_SIDE ({side}) must be at most {DECODE_MIN_SIDE}, "
                "the shorter side photos are decoded to.",
                id="clipmatch.E007",
            )
        )
    dark = conf.get_or_none("PHOTO_DARK_BELOW")
    bright = conf.get_or_none("PHOTO_BRIGHT_ABOVE")
    if dark is not None and bright is not None and dark >= bright:
        errors.append(
            Error(
                f"CLIPMATCH_PHOTO_DARK_BELOW ({dark}) must be below "
                f"CLIPMATCH_PHOTO_BRIGHT_ABOVE ({bright}), or a photo is both.",
                id="clipmatch.E007",
            )
        )
    return errors


@register()
def check_precision_on_device(app_configs=None, **kwargs):
    """fp16 runs on CUDA only. With CLIPMATCH_DEVICE=auto the device is known only
    where the model loads (torch is not imported here): the engine refuses there."""
    if conf.get_or_none("PRECISION") != "fp16" or conf.get_or_none("DEVICE") != "cpu":
        return []
    return [
        Error(
            "CLIPMATCH_PRECISION fp16 runs on CUDA only, and CLIPMATCH_DEVICE is cpu.",
            hint="Use bf16 or fp32 on the CPU, or auto (bf16 where the CPU has "
            "bf16 instructions, else fp32).",
            id="clipmatch.E008",
        )
    ]
