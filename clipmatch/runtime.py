"""The process's engine for the configured model, on the configured device."""

from __future__ import annotations

from clipmatch import conf
from clipmatch.inference.engine import ClipEngine, load_engine


def get_engine(
    ref: str | None = None,
    device: str | None = None,
    *,
    fingerprint: str | None = None,
) -> ClipEngine:
    """Load (once per process) `ref`, or CLIPMATCH_MODEL, on the configured device."""
    return load_engine(
        ref or conf.get("MODEL"),
        device=device or conf.get("DEVICE"),
        threads=conf.get("TORCH_THREADS"),
        batch_size=conf.get("BATCH_SIZE"),
        fingerprint=fingerprint,
    )
