"""Start and stop a `manage.py qcluster` child process (the demo and the tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings


def qcluster_start(*, env: dict[str, str] | None = None, log=None) -> subprocess.Popen:
    """A worker cluster in its own process group, so it can be stopped whole."""
    return subprocess.Popen(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "qcluster"],
        cwd=settings.BASE_DIR,
        env=env if env is not None else os.environ.copy(),
        stdout=log if log is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
        start_new_session=True,
    )


def qcluster_stop(process: subprocess.Popen, *, grace: float = 10) -> None:
    """Ask the cluster to stop; kill its whole group if it has not within `grace`."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
