"""Is this process able to serve: the database, the broker, the cache and the
configured model's files, each answered with yes or no and nothing more."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

log = logging.getLogger(__name__)


def _database() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    from django_q.brokers import get_broker

    if not get_broker().ping():
        raise ConnectionError("the broker did not answer")


def _cache() -> None:
    from django.core.cache import cache

    key = f"clipmatch:readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise ConnectionError("the cache did not keep a value")
    cache.delete(key)


def _model_files() -> None:
    from clipmatch import conf

    model = conf.get("MODEL")
    path = Path(model).expanduser()
    if path.is_absolute() or path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError("the model folder has no config.json")
        return
    # A hub id: ready when the Hugging Face cache holds it (workers never download).
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(model, "config.json"), str):
        raise FileNotFoundError("the model is neither a folder nor in the hub cache")


CHECKS = {
    "database": _database,
    "broker": _broker,
    "cache": _cache,
    "model": _model_files,
}


def readiness() -> dict[str, bool]:
    """Each dependency by name, True when it answered. Why one failed goes to the
    log, never to the (public) answer."""
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception:
            log.warning("Readiness check %s failed.", name, exc_info=True)
            results[name] = False
        else:
            results[name] = True
    return results
