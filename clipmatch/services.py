"""Writes for the CLIP engine: model versions and the embedding cache."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from clipmatch import conf
from clipmatch.engine import ClipEngine, ModelSource, get_engine, resolve_model
from clipmatch.models import Embedding, ModelVersion
from clipmatch.scoring import Thresholds, ensemble


def text_hash(text: str) -> str:
    """Content hash of a text as embedded (exact characters)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ActiveModel:
    """The configured model, its database row and the thresholds in force."""

    source: ModelSource
    version: ModelVersion
    thresholds: Thresholds

    def engine(self) -> ClipEngine:
        return get_engine(self.source.ref, fingerprint=self.source.fingerprint)


def thresholds_for(source: ModelSource) -> Thresholds:
    """Thresholds from settings, else those shipped beside the model; never invented."""
    configured = conf.get("THRESHOLDS")
    data = configured or source.meta.get("thresholds")
    if not data:
        raise ImproperlyConfigured(
            f"No thresholds for model {source.ref!r}: raw CLIP cosines differ per "
            "model, so set CLIPMATCH_THRESHOLDS (see the README) after calibrating."
        )
    data = dict(data)
    top_k = conf.get("CATEGORY_TOP_K") or data.get("category_top_k")
    data["category_top_k"] = top_k or source.meta.get("category_top_k", 0)
    try:
        return Thresholds.from_dict(data)
    except ValueError as exc:
        raise ImproperlyConfigured(f"Bad thresholds for {source.ref!r}: {exc}") from exc


def model_version_active(ref: str | None = None) -> ActiveModel:
    """Resolve the configured (or given) model and record its version row."""
    source = resolve_model(ref or conf.get("MODEL"))
    thresholds = thresholds_for(source)
    version, _ = ModelVersion.objects.get_or_create(
        fingerprint=source.fingerprint,
        source=source.ref,
        defaults={
            "name": source.name,
            "thresholds": thresholds.as_dict(),
            "metrics": source.meta.get("metrics", {}),
        },
    )
    return ActiveModel(source=source, version=version, thresholds=thresholds)


def _cached(version: ModelVersion, kind: str, hashes: Sequence[str]) -> dict:
    rows = Embedding.objects.filter(
        model_version=version, kind=kind, content_hash__in=set(hashes)
    )
    return {row.content_hash: row.as_array() for row in rows}


def _store(version: ModelVersion, kind: str, arrays: dict[str, np.ndarray]) -> None:
    # Two workers may embed the same content at once: the constraint keeps one row.
    Embedding.objects.bulk_create(
        [
            Embedding(
                model_version=version,
                kind=kind,
                content_hash=key,
                chunks=array.shape[0],
                dim=array.shape[1],
                vectors=np.ascontiguousarray(array, dtype=np.float32).tobytes(),
            )
            for key, array in arrays.items()
        ],
        ignore_conflicts=True,
    )


def embeddings_images(
    *,
    version: ModelVersion,
    images: Sequence[tuple[str, Callable[[], Image.Image]]],
    engine: Callable[[], ClipEngine],
) -> list[np.ndarray]:
    """Unit vectors for images given as (content hash, decoder) pairs, cached.

    An image is decoded only when its vector is not cached yet, so a rescore after
    a threshold change reads no image file and runs no model.
    """
    found = _cached(version, Embedding.Kind.IMAGE, [key for key, _ in images])
    missing = {key: decode for key, decode in images if key not in found}
    if missing:
        pictures = [decode() for decode in missing.values()]
        vectors = engine().embed_images(pictures)
        fresh = {key: vectors[n : n + 1] for n, key in enumerate(missing)}
        _store(version, Embedding.Kind.IMAGE, fresh)
        found.update(fresh)
    return [found[key][0] for key, _ in images]


def embeddings_texts(
    *, version: ModelVersion, texts: Sequence[str], engine: Callable[[], ClipEngine]
) -> list[np.ndarray]:
    """Per text, a (windows, d) array of unit vectors, cached by the text's hash."""
    keys = [text_hash(t) for t in texts]
    found = _cached(version, Embedding.Kind.TEXT, keys)
    missing = {}
    for key, text in zip(keys, texts, strict=True):
        if key not in found:
            missing[key] = text
    if missing:
        arrays = engine().embed_texts(list(missing.values()))
        fresh = dict(zip(missing, arrays, strict=True))
        _store(version, Embedding.Kind.TEXT, fresh)
        found.update(fresh)
    return [found[key] for key in keys]


def prompt_templates_for(source: ModelSource) -> list[str]:
    """The zero-shot prompts a model was made for, else the configured ones.

    A checkpoint trained on listing titles knows "red mug" but not necessarily
    "a photo of a mug.", so its clipmatch.json may name its own prompts.
    """
    return list(
        source.meta.get("category_prompt_templates") or conf.get("PROMPT_TEMPLATES")
    )


def category_vectors(
    *,
    version: ModelVersion,
    names: Sequence[str],
    templates: Sequence[str],
    engine: Callable[[], ClipEngine],
) -> np.ndarray:
    """One prompt-ensembled unit vector per category name.

    Templates hold "{}" or "{category}" where the category's name goes.
    """
    prompts = [t.format(name, category=name) for name in names for t in templates]
    vectors = embeddings_texts(version=version, texts=prompts, engine=engine)
    per_class = len(templates)
    rows = [
        ensemble(np.concatenate(vectors[i * per_class : (i + 1) * per_class]))
        for i in range(len(names))
    ]
    return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
