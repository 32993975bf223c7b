"""The benchmark's own database, media folder and queue, and the child process
that runs in them: the user's data and queue are never touched."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class BenchEnvironment:
    """What the benchmark made for itself, to hand its child and remove after."""

    work_dir: Path
    env: dict[str, str]
    drop: Callable[[], None]


def bench_environment(*, model: str, precision: str | None) -> BenchEnvironment:
    """A fresh database of the configured kind (SQLite: a file in a temporary
    folder; PostgreSQL: a new database on the configured server), a media folder
    and a queue name of its own on the configured broker."""
    import tempfile

    from django.conf import settings
    from django.db import connection

    work_dir = Path(tempfile.mkdtemp(prefix="clip-benchmark-"))
    tag = uuid.uuid4().hex[:8]
    env = os.environ.copy()
    vendor = connection.vendor
    if vendor == "sqlite":
        url = f"sqlite:///{work_dir / 'benchmark.sqlite3'}"
        drop_db = None
    elif vendor == "postgresql":
        url, drop_db = _postgres_database(connection, f"clip_benchmark_{tag}")
    else:
        raise NotImplementedError(
            f"The benchmark runs on SQLite or PostgreSQL, not {vendor}."
        )
    media = str(work_dir / "media")
    queue = f"clip-benchmark-{tag}"
    env.update(
        {
            "DATABASE_URL": url,
            "CLIPMATCH_MEDIA_ROOT": media,
            "CLIPMATCH_TEST_MEDIA_ROOT": media,  # config.settings.test reads this one
            "Q_CLUSTER_NAME": queue,
            "CLIPMATCH_MODEL": model,
            "PYTHONUNBUFFERED": "1",
            # As in production: with DEBUG on (config.settings.local's default),
            # Django formats and keeps every query, which the workers would pay
            # for in time (about a fifth of a listing's scoring) and memory.
            "DJANGO_DEBUG": "false",
        }
    )
    if precision:
        env["CLIPMATCH_PRECISION"] = precision  # read once the engine has the setting
    redis_url = settings.Q_CLUSTER.get("redis")

    def drop() -> None:
        import shutil

        try:
            if redis_url:
                import redis

                client = redis.Redis.from_url(redis_url)
                keys = list(client.scan_iter(f"django_q:{queue}:*"))
                if keys:
                    client.delete(*keys)
            if drop_db is not None:
                drop_db()
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

    return BenchEnvironment(work_dir=work_dir, env=env, drop=drop)


def _postgres_database(connection, name: str):
    from urllib.parse import quote

    params = connection.settings_dict
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    user = quote(params.get("USER") or "")
    password = f":{quote(params['PASSWORD'])}" if params.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = params.get("HOST") or "localhost"
    port = f":{params['PORT']}" if params.get("PORT") else ""

    def drop() -> None:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgres://{auth}{host}{port}/{name}", drop


def child_run(args: list[str], env: dict[str, str], **popen):
    """`manage.py ARGS` in the benchmark's environment, to its end: on a Ctrl-C
    (which the child gets too, and which stops its cluster) it is waited for, so
    that nothing it started outlives the command."""
    import subprocess

    from django.conf import settings

    process = subprocess.Popen(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args],
        cwd=settings.BASE_DIR,
        env=env,
        **popen,
    )
    try:
        out, err = process.communicate()
    except KeyboardInterrupt:
        process.wait()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)
