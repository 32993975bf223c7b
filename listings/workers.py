"""Start and stop `manage.py` child processes: a worker cluster (the demo and the
tests), and the development server with a cluster beside it (`manage.py serve`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

WORKER_CHECK = "listings.tasks.worker_check"
STOP_GRACE = 30  # seconds the children get to finish before they are killed
READY_TIMEOUT = 60  # seconds after which the URLs are printed, worker or not


def _manage(*args: str, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    """`manage.py ARGS` in a session of its own: a Ctrl-C at the terminal does not
    reach it, so the parent decides how and when it stops, and it stops whole."""
    return subprocess.Popen(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args],
        cwd=settings.BASE_DIR,
        env=env if env is not None else os.environ.copy(),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        **popen,
    )


def qcluster_start(
    *, env: dict[str, str] | None = None, log=None, command: str = "qcluster"
) -> subprocess.Popen:
    """A worker cluster in its own process group, so it can be stopped whole;
    `command="qcluster_webhooks"` for the one that sends webhooks."""
    return _manage(
        command,
        env=env,
        stdout=log if log is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
    )


def qcluster_stop(process: subprocess.Popen, *, grace: float = 10) -> None:
    """Ask the cluster to stop; kill its whole group if it has not within `grace`."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def worker_check_queue() -> str:
    """Queue a task that does nothing; its result shows that a worker takes tasks."""
    from django_q.tasks import async_task

    return async_task(WORKER_CHECK, task_name="clipmatch: worker check")


def worker_check_answered(task_id: str) -> bool:
    """Whether a worker ran the check; its result row is removed, being no work."""
    from django_q.models import Task

    done = Task.objects.filter(id=task_id)
    if not done.exists():  # a read: a delete would take SQLite's write lock
        return False
    done.delete()
    return True


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def serve(*, port: int, on_ready: Callable[[], None], out) -> str | None:
    """Run the development server on 127.0.0.1:`port` and a worker cluster until
    SIGINT or SIGTERM; call `on_ready` once both answer. Returns None after a
    requested stop, or what went wrong when a child stopped by itself.

    The children run in sessions of their own, so the terminal's Ctrl-C reaches this
    process alone, which stops each child once, in the way that child stops
    cleanly, waits for both and kills whatever is left after STOP_GRACE seconds.
    """
    requested: list[int] = []

    def request_stop(signum, frame):
        requested.append(signum)  # later signals change nothing: the stop is on

    previous = {
        signum: signal.signal(signum, request_stop)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    # Unbuffered, so that what they print keeps its order with ours in a pipe.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    children = {
        "worker": _manage("qcluster", env=env),
        "webhook worker": _manage("qcluster_webhooks", env=env),
        "server": _manage("runserver", f"127.0.0.1:{port}", env=env),
    }
    try:
        return _supervise(children, port, on_ready, out, requested)
    finally:
        _stop(children, out)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _supervise(children, port, on_ready, out, requested) -> str | None:
    check = worker_check_queue()
    started = time.monotonic()
    server_up = worker_up = announced = False
    while not requested:
        for name, process in children.items():
            if process.poll() is not None:
                return (
                    f"The {name} stopped by itself (exit status "
                    f"{process.returncode}); see its output above."
                )
        if not announced:
            server_up = server_up or _listening(port)
            worker_up = worker_up or worker_check_answered(check)
            late = time.monotonic() - started > READY_TIMEOUT
            if server_up and (worker_up or late):
                if not worker_up:
                    out.write(
                        f"The worker has not run a task in {READY_TIMEOUT} s; "
                        "listings wait in the queue until it does."
                    )
                on_ready()
                out.flush()
                announced = True
        time.sleep(0.2)
    return None


def _stop(children: dict[str, subprocess.Popen], out) -> None:
    if any(process.poll() is None for process in children.values()):
        out.write("Stopping the server and the worker...")
        out.flush()
    # qcluster stops gracefully on SIGTERM to its first process, which then stops
    # its workers itself (they would die at once on a SIGTERM of their own);
    # runserver and its autoreloader child have nothing to finish.
    for name, process in children.items():
        try:
            if name in ("worker", "webhook worker"):
                process.send_signal(signal.SIGTERM)
            else:
                os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_GRACE
    for name, process in children.items():
        while time.monotonic() < deadline and (
            process.poll() is None or _group_alive(process.pid)
        ):
            time.sleep(0.1)
        if process.poll() is None or _group_alive(process.pid):
            out.write(f"The {name} did not stop within {STOP_GRACE} s; killed it.")
            out.flush()
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
