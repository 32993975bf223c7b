"""Request ids and log lines: one per request and one per task, plain or JSON.

The id comes from the request's X-Request-Id (or is made up), travels with every
task the request queues (inside django-q2's task package), and is on every log
record written while the request or the task runs.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "clipmatch_request_id", default=""
)
# What a client may choose as its id; anything else is replaced, so a log line
# never carries a header's newlines or a megabyte of it.
VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
task_log = logging.getLogger("clipmatch.task")

# The attributes every LogRecord has: the rest came in through `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def new_request_id(offered: str | None = None) -> str:
    if offered and VALID_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


def current_request_id() -> str:
    return request_id_var.get()


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (\"-\" outside any)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


# --- django-q2 tasks ---------------------------------------------------------------
# django-q2's own signals are the one place every task passes through on both sides
# of the broker, whoever queued it; the receivers only copy an id and write a line.


def task_func_name(task: dict, func=None) -> str:
    """The dotted path of a task's function, as it was queued."""
    if isinstance(task.get("func"), str):
        return task["func"]
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}"


def task_enqueued(sender, task: dict, **kwargs) -> None:
    request_id = request_id_var.get()
    if request_id:
        task["request_id"] = request_id


def task_starting(sender, task: dict, **kwargs) -> None:
    # A task queued by no request (a schedule, the reconciler) gets its own id.
    request_id_var.set(task.get("request_id") or f"task-{task.get('id', '')}")
    task["_clipmatch_started"] = time.monotonic()


def task_finished(sender, task: dict, func=None, **kwargs) -> None:
    started = task.pop("_clipmatch_started", None)
    seconds = time.monotonic() - started if started is not None else None
    name = task_func_name(task, func)
    outcome = "ok" if task.get("success") else "failed"
    task_log.info(
        # The name quoted as django-q2 writes it, so LOGGING's routine_tasks filter
        # quiets the every-minute tasks here too.
        "task '%s' %s %.3fs",
        name,
        outcome,
        seconds or 0.0,
        extra={
            "task_id": task.get("id"),
            "task_name": task.get("name"),
            "func": name,
            "outcome": outcome,
            "duration_ms": round((seconds or 0.0) * 1000, 1),
        },
    )
    request_id_var.set("")


def connect() -> None:
    from django_q.signals import post_execute_in_worker, pre_enqueue, pre_execute

    pre_enqueue.connect(task_enqueued, dispatch_uid="clipmatch-request-id")
    pre_execute.connect(task_starting, dispatch_uid="clipmatch-task-start")
    post_execute_in_worker.connect(task_finished, dispatch_uid="clipmatch-task-done")
