"""Where a model's files are, known without loading it: a local save_pretrained
folder or a hub id's snapshot, fingerprinted so that equal weights are one version.

No torch; huggingface_hub is imported only when a hub id is looked up.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

META_FILE = "clipmatch.json"
# About a model, not part of it: a fine-tuning run's report (timings and all).
REPORT_FILE = "finetune_report.json"
NOT_WEIGHTS = (META_FILE, REPORT_FILE)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")


class ModelLoadError(RuntimeError):
    """The configured model could not be found or loaded; never replaced silently."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model lives and what exactly it is, known without loading it."""

    ref: str
    path: Path
    fingerprint: str
    name: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def version(self) -> str:
        return f"{self.name}@{self.fingerprint[:12]}"


_source_cache: dict[tuple[str, tuple], ModelSource] = {}
# Hub ids as resolved in this process: a snapshot found, or the hub's silence, is
# not asked about again (a worker scores many listings; a hub outage must not cost
# a timeout each).
_hub_cache: dict[str, ModelSource | ModelLoadError] = {}


def resolve_model(ref: str, *, hub_timeout: float | None = None) -> ModelSource:
    """Find a local directory or a hub id's snapshot and fingerprint it.

    A hub id is looked up in the local Hugging Face cache only, unless `hub_timeout`
    allows asking the hub (and downloading) for that many seconds at most.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        return _local_source(ref, path.resolve())
    if path.is_absolute() or ref.startswith((".", "~")) or ref.count("/") > 1:
        raise ModelLoadError(f"Model directory {ref!r} does not exist.")
    return _hub_source(ref, hub_timeout)


def _local_source(ref: str, path: Path) -> ModelSource:
    # clipmatch.json (thresholds, metrics) and a fine-tuning report are about the
    # model, not part of it: editing them must not make a new version, or cached
    # embeddings would be thrown away; equal weights are one version.
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.name.endswith(WEIGHT_SUFFIXES)
        and p.name not in NOT_WEIGHTS
    )
    if not (path / "config.json").exists():
        raise ModelLoadError(
            f"{path} has no config.json: not a save_pretrained folder."
        )
    watched = [*files, path / META_FILE] if (path / META_FILE).exists() else files
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in watched)
    cached = _source_cache.get((str(path), stamp))
    if cached:
        return cached
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.relative_to(path).as_posix().encode())
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    meta = _read_meta(path)
    source = ModelSource(
        ref=ref,
        path=path,
        fingerprint=digest.hexdigest(),
        name=meta.get("name") or path.name,
        meta=meta,
    )
    _source_cache[(str(path), stamp)] = source
    return source


def _hub_source(ref: str, timeout: float | None) -> ModelSource:
    cached = _hub_cache.get(ref)
    if isinstance(cached, ModelSource):
        return cached
    if isinstance(cached, ModelLoadError) and timeout is not None:
        raise cached
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(ref, local_files_only=True)
    except Exception as exc:
        if timeout is None or _hub_offline():
            # Not cached, and this caller may not wait on the network: a web
            # request or a scoring task must never hang on the hub.
            raise ModelLoadError(
                f"Model {ref!r} is neither a local directory nor in this machine's "
                "Hugging Face cache. Download it once where the hub is reachable "
                f"(manage.py clip_info --model {ref}, or hf download {ref}); with "
                "HF_HUB_OFFLINE=1 only the cache is used."
            ) from exc
        try:
            local = _download_bounded(ref, timeout)
        except ModelLoadError as error:
            _hub_cache[ref] = error
            raise
    path = Path(local)
    # The snapshot folder's name is the hub commit: an exact, stable version.
    source = ModelSource(
        ref=ref, path=path, fingerprint=path.name, name=ref, meta=_read_meta(path)
    )
    _hub_cache[ref] = source
    return source


def _hub_offline() -> bool:
    # Read now: huggingface_hub reads HF_HUB_OFFLINE once, at its import.
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _download_bounded(ref: str, timeout: float) -> str:
    """Ask the hub which commit `ref` is within `timeout` seconds, then fetch it.

    huggingface_hub retries a silent server for minutes, so the question runs in a
    daemon thread that is abandoned at the deadline; the download that follows an
    answer may take longer (its reads time out on their own).
    """
    from huggingface_hub import HfApi, snapshot_download

    answer: dict[str, Any] = {}

    def ask():
        try:
            # The request's own timeout is longer than the deadline: silence is
            # always reported as such, never as whichever timer fired first.
            answer["sha"] = HfApi().model_info(ref, timeout=2 * timeout).sha
        except Exception as exc:  # reported below, in the caller's thread
            answer["error"] = exc

    asking = threading.Thread(target=ask, name=f"hub-lookup {ref}", daemon=True)
    asking.start()
    asking.join(timeout)
    if "sha" not in answer:
        error = answer.get("error")
        why = (
            f"{error.__class__.__name__}: {error}"
            if error
            else f"no answer within {timeout:g} s"
        )
        raise ModelLoadError(
            f"Model {ref!r} is not in this machine's Hugging Face cache and the hub "
            f"did not tell its files ({why}). Download it beforehand (hf download "
            f"{ref}), or set HF_HUB_OFFLINE=1 to use the local cache only."
        )
    try:
        return snapshot_download(ref, revision=answer["sha"], etag_timeout=timeout)
    except Exception as exc:
        raise ModelLoadError(
            f"Model {ref!r} could not be downloaded from the Hugging Face hub: "
            f"{exc.__class__.__name__}: {exc}. Download it beforehand (hf download "
            f"{ref}), or set HF_HUB_OFFLINE=1 to use the local cache only."
        ) from exc


def _read_meta(path: Path) -> dict[str, Any]:
    meta_path = path / META_FILE
    if not meta_path.exists():
        return {}
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{meta_path} is not valid JSON: {exc}") from exc
