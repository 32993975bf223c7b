"""`manage.py serve` (`make serve`, the end of `make demo`): the server and a worker
until one Ctrl-C, which stops both quietly and leaves no process behind."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
READY = "Ctrl-C stops the server and the worker."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes() -> list[tuple[int, int, int]]:
    """(pid, parent pid, session id) of every live process; zombies are gone."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # it ended while we looked
        # After the command name, in parentheses: state, ppid, pgrp, session, ...
        state, ppid, _pgrp, session = text.rsplit(")", 1)[1].split()[:4]
        if state != "Z":
            found.append((int(stat.parent.name), int(ppid), int(session)))
    return found


def wait_for_text(path: Path, text: str, timeout: float, process) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        output = path.read_text()
        if text in output:
            return output
        time.sleep(0.2)
    pytest.fail(f"No {text!r} within {timeout}s:\n{path.read_text()[-3000:]}")


def test_one_ctrl_c_stops_server_and_worker_quietly_leaving_no_process(
    worker_env, tmp_path
):
    port, log = free_port(), tmp_path / "serve.log"
    with log.open("w") as out:
        # In a session of its own, as a shell runs `make serve` in a terminal.
        launcher = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)]
            + ["--moderator", "moderator"],
            cwd=ROOT,
            env=worker_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_text(log, READY, 60, launcher)
        children = [pid for pid, ppid, _ in processes() if ppid == launcher.pid]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/favicon.ico") as icon:
            served = icon.status
        # What a terminal does on Ctrl-C: SIGINT to its foreground process group.
        os.killpg(launcher.pid, signal.SIGINT)
        code = launcher.wait(timeout=40)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()

    output = log.read_text()
    login = next(line for line in output.splitlines() if "moderator login" in line)
    left = [pid for pid, _, session in processes() if session in children]
    assert code == 0, output
    assert served == 200
    # qcluster, qcluster_webhooks and runserver, each in a session of its own
    assert len(children) == 3
    assert left == [], output
    assert login.startswith("Created moderator login -> username: moderator  ")
    assert output.count(login.strip()) == 2  # again with the addresses, at the end
    assert f"  admin         http://127.0.0.1:{port}/admin/" in output
    assert output.index(READY) > output.index("Q Cluster")  # after the worker's logs
    for bad in ("Traceback", "Segmentation fault", "Error", " ERROR ", "killed"):
        assert bad not in output, output
    *_, cluster_stopped, stopped = output.splitlines()
    assert cluster_stopped.endswith(" has stopped.") and stopped == "Stopped."
