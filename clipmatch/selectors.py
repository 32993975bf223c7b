"""Reads for the CLIP engine: finding recorded model versions."""

from __future__ import annotations

from clipmatch.models import ModelVersion


def model_version_lookup(ref: str) -> ModelVersion | None:
    """A recorded version named by its id ("12"), or its version ("name@fingerprint
    prefix" as shown everywhere); None when the reference names none."""
    if ref.isdigit():
        return ModelVersion.objects.filter(pk=int(ref)).first()
    name, at, prefix = ref.rpartition("@")
    if not at or not name or len(prefix) < 8:
        return None
    matches = list(
        ModelVersion.objects.filter(name=name, fingerprint__startswith=prefix)[:2]
    )
    return matches[0] if len(matches) == 1 else None
