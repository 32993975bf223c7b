"""Logging filters (used by LOGGING in settings; nothing here touches the ORM)."""

from __future__ import annotations

import logging


class RoutineTasksToDebug(logging.Filter):
    """Turn django-q2's INFO lines about routine tasks into DEBUG records.

    django-q2 logs four INFO lines for every run of every task: for schedules that
    run every minute, a stream that buries everything else. Its lines that name one
    of `funcs` (as 'dotted.path') or `schedules` (as [name]), and its bare
    "Enqueued [queue] id" lines, which name nothing a person can use, become DEBUG:
    shown with LOG_LEVEL=DEBUG, dropped otherwise. The tasks say what they did
    themselves, when they did anything; failures stay ERRORs.
    """

    def __init__(self, funcs=(), schedules=()):
        super().__init__()
        self.marks = tuple(f"'{func}'" for func in funcs) + tuple(
            f"[{name}]" for name in schedules
        )

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        message = record.getMessage()
        if not (
            message.startswith("Enqueued [")
            or any(mark in message for mark in self.marks)
        ):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        # A logger's level is checked before its filters run: check it again.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
