"""The process's engine for the configured model, on the configured device."""

from __future__ import annotations

from clipmatch import conf
from clipmatch.inference.engine import (
    ClipEngine,
    ModelSource,
    load_engine,
    resolve_model,
)


def hub_timeout(hub: bool) -> float | None:
    """How long a hub lookup may take: only a person's command may wait on it."""
    return float(conf.get("HUB_TIMEOUT")) if hub else None


def resolve(ref: str, *, hub: bool = False) -> ModelSource:
    """A model's files; a hub id is fetched (bounded) only when `hub` allows it."""
    return resolve_model(ref, hub_timeout=hub_timeout(hub))


def get_engine(
    ref: str | None = None,
    device: str | None = None,
    *,
    fingerprint: str | None = None,
    hub: bool = False,
) -> ClipEngine:
    """Load (once per process) `ref`, or CLIPMATCH_MODEL, on the configured device.

    Web requests and workers leave `hub` off: they never wait on the Hugging Face
    hub, only read its local cache. Commands a person runs may fetch a hub id.
    """
    return load_engine(
        ref or conf.get("MODEL"),
        device=device or conf.get("DEVICE"),
        threads=conf.get("TORCH_THREADS"),
        batch_size=conf.get("BATCH_SIZE"),
        fingerprint=fingerprint,
        hub_timeout=hub_timeout(hub),
    )
