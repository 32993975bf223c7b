"""The process's engine for the configured model, on the configured device."""

from __future__ import annotations

from clipmatch import conf
from clipmatch.inference.engine import (
    ClipEngine,
    load_engine,
    pick_device,
    pick_precision,
)
from clipmatch.inference.sources import ModelSource, resolve_model

_precisions: dict[tuple[str, str], str] = {}


def hub_timeout(hub: bool) -> float | None:
    """How long a hub lookup may take: only a person's command may wait on it."""
    return float(conf.get("HUB_TIMEOUT")) if hub else None


def resolve(ref: str, *, hub: bool = False) -> ModelSource:
    """A model's files; a hub id is fetched (bounded) only when `hub` allows it."""
    return resolve_model(ref, hub_timeout=hub_timeout(hub))


def precision() -> str:
    """CLIPMATCH_PRECISION as this process runs it on CLIPMATCH_DEVICE: "auto"
    resolved (fp32, bf16 or fp16). Imports torch: never call it in a process that
    forks workers; the answer is kept per process."""
    key = (conf.get("PRECISION"), conf.get("DEVICE"))
    if key not in _precisions:
        _precisions[key] = pick_precision(key[0], pick_device(key[1]))
    return _precisions[key]


def get_engine(
    ref: str | None = None,
    device: str | None = None,
    *,
    fingerprint: str | None = None,
    hub: bool = False,
    precision: str | None = None,
) -> ClipEngine:
    """Load (once per process) `ref`, or CLIPMATCH_MODEL, on the configured device
    at `precision` (a model version's), else at CLIPMATCH_PRECISION.

    Web requests and workers leave `hub` off: they never wait on the Hugging Face
    hub, only read its local cache. Commands a person runs may fetch a hub id.
    """
    return load_engine(
        ref or conf.get("MODEL"),
        device=device or conf.get("DEVICE"),
        threads=conf.get("TORCH_THREADS"),
        batch_size=conf.get("BATCH_SIZE"),
        precision=precision or conf.get("PRECISION"),
        fingerprint=fingerprint,
        hub_timeout=hub_timeout(hub),
    )
