"""Writes for the CLIP engine: model versions and the embedding cache."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import Image

from clipmatch import conf, runtime
from clipmatch.inference.engine import ClipEngine
from clipmatch.inference.images import UnreadableImage
from clipmatch.inference.scoring import Thresholds, ensemble
from clipmatch.inference.sources import ModelLoadError, ModelSource, resolve_model
from clipmatch.models import Embedding, ModelAuditEntry, ModelVersion, ThresholdVersion
from clipmatch.runtime import get_engine, resolve
from clipmatch.signals import model_version_activated, model_version_shadowed


def text_hash(text: str) -> str:
    """Content hash of a text as embedded (exact characters)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ActiveModel:
    """The model that scores, its database row and the thresholds in force."""

    source: ModelSource
    version: ModelVersion
    thresholds: Thresholds
    threshold_version: ThresholdVersion | None = None
    per_category: dict = field(default_factory=dict)

    def engine(self) -> ClipEngine:
        return get_engine(
            self.source.ref,
            fingerprint=self.source.fingerprint,
            precision=self.version.precision,
        )

    def thresholds_for(self, category: str) -> Thresholds:
        """A category's own applied thresholds where it has them, else the global."""
        return self.per_category.get(category, self.thresholds)


class ModelVersionError(Exception):
    """A model version change that is not allowed; the message says why."""


def _is_configured_model(source: ModelSource) -> bool:
    configured = conf.get("MODEL")
    if source.ref == configured:
        return True
    local = Path(configured).expanduser()
    return local.is_dir() and local.resolve() == Path(source.path).resolve()


def thresholds_for(source: ModelSource) -> Thresholds:
    """Thresholds from settings for the configured model, else those shipped beside
    the model; never invented, never borrowed from another model (raw cosines
    differ per model)."""
    configured = conf.get("THRESHOLDS") if _is_configured_model(source) else None
    data = configured or source.meta.get("thresholds")
    if not data:
        raise ImproperlyConfigured(
            f"No thresholds for model {source.ref!r}: raw CLIP cosines differ per "
            "model, so ship them in its clipmatch.json or, for the configured "
            "model, set CLIPMATCH_THRESHOLDS (see the README) after calibrating."
        )
    data = dict(data)
    top_k = conf.get("CATEGORY_TOP_K") or data.get("category_top_k")
    data["category_top_k"] = top_k or source.meta.get("category_top_k", 0)
    try:
        return Thresholds.from_dict(data)
    except ValueError as exc:
        raise ImproperlyConfigured(f"Bad thresholds for {source.ref!r}: {exc}") from exc


def _row_thresholds(version: ModelVersion) -> Thresholds:
    try:
        return Thresholds.from_dict(version.thresholds)
    except ValueError as exc:
        raise ImproperlyConfigured(f"Bad thresholds for {version}: {exc}") from exc


def source_for_version(version: ModelVersion) -> ModelSource:
    """The files of a recorded version, refusing any that are gone or changed."""
    try:
        source = resolve_model(version.source)
    except ModelLoadError as exc:
        raise ModelLoadError(
            f"The files of model version {version} are missing: {exc}"
        ) from exc
    if source.fingerprint != version.fingerprint:
        raise ModelLoadError(
            f"The files of model version {version} at {version.source} changed "
            f"(fingerprint {version.fingerprint[:12]} became "
            f"{source.fingerprint[:12]}); register them as a new version."
        )
    return source


def model_version_active(ref: str | None = None, *, hub: bool = False) -> ActiveModel:
    """The activated version, else the configured (or given) model, with its row.

    An activated version runs at the precision it was recorded with; the configured
    model's row is the one at this process's CLIPMATCH_PRECISION (another precision
    is another row, so cached embeddings and scores never mix precisions).

    An activated version whose files are missing or changed raises ModelLoadError:
    the settings' model is never used in its place. A hub id not yet in the local
    cache is fetched only with `hub` (a person's command, never a web request).
    """
    activated = None if ref else ModelVersion.objects.filter(is_active=True).first()
    if activated is not None:
        source = source_for_version(activated)
        version = activated
        if _is_configured_model(source):
            base = thresholds_for(source)
        else:
            base = _row_thresholds(activated)
    else:
        source = resolve(ref or conf.get("MODEL"), hub=hub)
        base = thresholds_for(source)
        version, _ = ModelVersion.objects.get_or_create(
            fingerprint=source.fingerprint,
            source=source.ref,
            precision=runtime.precision(),
            defaults={
                "name": source.name,
                "thresholds": base.as_dict(),
                "metrics": source.meta.get("metrics", {}),
            },
        )
    applied = (
        ThresholdVersion.objects.filter(
            model_version=version, status=ThresholdVersion.Status.APPLIED
        )
        .order_by("-applied_at", "-pk")
        .first()
    )
    if applied is None:
        return ActiveModel(source=source, version=version, thresholds=base)
    data = dict(applied.thresholds)
    data.setdefault("category_top_k", base.category_top_k)
    per_category = {
        name: Thresholds.from_dict({**cuts, "category_top_k": data["category_top_k"]})
        for name, cuts in data.get("categories", {}).items()
    }
    return ActiveModel(
        source=source,
        version=version,
        thresholds=Thresholds.from_dict(data),
        threshold_version=applied,
        per_category=per_category,
    )


def engine_for_scoring() -> ClipEngine:
    """Load (once per process) the engine that scores now: the activated version's
    at its precision, else the configured model's. Writes nothing: a worker calls
    it as it starts, before any task (model_version_active records the row)."""
    activated = ModelVersion.objects.filter(is_active=True).first()
    if activated is None:
        return get_engine()
    source = source_for_version(activated)
    return get_engine(
        source.ref, fingerprint=source.fingerprint, precision=activated.precision
    )


def model_version_register(
    *, path: str, report: dict, actor=None
) -> tuple[ModelVersion, bool]:
    """Record a fine-tuned model folder as a version with its metrics and
    thresholds; refuses a run that its own checks refused."""
    if not report.get("accepted"):
        raise ModelVersionError(
            "Not registered: " + " ".join(report.get("refusals") or ["refused."])
        )
    source = resolve_model(path)
    thresholds = thresholds_for_registration(source)
    with transaction.atomic():
        version, created = ModelVersion.objects.update_or_create(
            fingerprint=source.fingerprint,
            source=source.ref,
            precision=runtime.precision(),
            defaults={
                "name": source.name,
                "thresholds": thresholds.as_dict(),
                "metrics": source.meta.get("metrics", {}),
                "report": report,
            },
        )
        ModelAuditEntry.objects.create(
            action=ModelAuditEntry.Action.REGISTERED,
            model_version=version,
            actor=actor,
            detail={"path": source.ref, "created": created},
        )
    return version, created


def thresholds_for_registration(source: ModelSource) -> Thresholds:
    data = dict(source.meta.get("thresholds") or {})
    data["category_top_k"] = source.meta.get("category_top_k", 0)
    try:
        return Thresholds.from_dict(data)
    except ValueError as exc:
        raise ModelVersionError(f"{source.path}: {exc}") from exc


def model_version_activate(*, version: ModelVersion, actor) -> ModelAuditEntry:
    """Make a version the one new scores use; after the commit, say so (a rescore).

    Its files must be there and unchanged. Writes who and when, and an audit entry,
    in the same transaction; the rescore is queued after the commit.
    """
    if actor is None or not actor.is_staff:
        raise ModelVersionError("Only a staff user can activate a model version.")
    source_for_version(version)  # refuse missing or changed files now
    with transaction.atomic():
        current = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if current.is_active:
            raise ModelVersionError(f"{current} is already the active version.")
        previous = ModelVersion.objects.filter(is_active=True).first()
        ModelVersion.objects.filter(is_active=True).update(is_active=False)
        current.is_active = True
        current.is_shadow = False
        current.activated_at = timezone.now()
        current.activated_by = actor
        try:
            with transaction.atomic():
                current.save(
                    update_fields=[
                        "is_active",
                        "is_shadow",
                        "activated_at",
                        "activated_by",
                    ]
                )
        except IntegrityError as exc:  # another activation won the race
            raise ModelVersionError(
                "Another model version was activated at the same time; try again."
            ) from exc
        entry = ModelAuditEntry.objects.create(
            action=ModelAuditEntry.Action.ACTIVATED,
            model_version=current,
            actor=actor,
            detail={"previous": str(previous) if previous else "settings"},
        )
        version_id = current.pk
        transaction.on_commit(
            lambda: model_version_activated.send(ModelVersion, version_id=version_id),
            robust=True,
        )
    version.refresh_from_db()
    return entry


def model_version_shadow(*, version: ModelVersion, actor) -> ModelAuditEntry:
    """Let a candidate score every listing scored from now on (and, queued after
    the commit, the current catalog) beside the active model, without routing."""
    if actor is None or not actor.is_staff:
        raise ModelVersionError("Only a staff user can set a shadow model.")
    source_for_version(version)
    with transaction.atomic():
        current = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if current.is_active:
            raise ModelVersionError(
                f"{current} is the active version, not a candidate."
            )
        if current.is_shadow:
            raise ModelVersionError(f"{current} already scores in shadow.")
        ModelVersion.objects.filter(is_shadow=True).update(is_shadow=False)
        current.is_shadow = True
        current.save(update_fields=["is_shadow"])
        entry = ModelAuditEntry.objects.create(
            action=ModelAuditEntry.Action.SHADOWED, model_version=current, actor=actor
        )
        version_id = current.pk
        transaction.on_commit(
            lambda: model_version_shadowed.send(ModelVersion, version_id=version_id),
            robust=True,
        )
    version.refresh_from_db()
    return entry


def model_version_shadowing() -> ActiveModel | None:
    """The candidate scoring in shadow with its thresholds, or None."""
    version = ModelVersion.objects.filter(is_shadow=True).first()
    if version is None:
        return None
    return ActiveModel(
        source=source_for_version(version),
        version=version,
        thresholds=_row_thresholds(version),
    )


def threshold_version_propose(
    *, version: ModelVersion, thresholds: dict, figures: dict
) -> ThresholdVersion:
    """Store a proposal; it routes nothing until a staff user applies it."""
    Thresholds.from_dict(thresholds)  # refuse malformed cut-offs now
    for name, cuts in thresholds.get("categories", {}).items():
        try:
            Thresholds.from_dict(cuts)
        except ValueError as exc:
            raise ModelVersionError(f"Category {name!r}: {exc}") from exc
    return ThresholdVersion.objects.create(
        model_version=version, thresholds=thresholds, figures=figures
    )


def threshold_version_apply(*, proposal: ThresholdVersion, actor) -> ModelAuditEntry:
    """Put a proposal in force for its model; scores made after it record it."""
    if actor is None or not actor.is_staff:
        raise ModelVersionError("Only a staff user can apply thresholds.")
    with transaction.atomic():
        current = ThresholdVersion.objects.select_for_update().get(pk=proposal.pk)
        if current.status != ThresholdVersion.Status.PROPOSED:
            raise ModelVersionError(
                f"Thresholds #{current.pk} are {current.status}, not proposed."
            )
        current.status = ThresholdVersion.Status.APPLIED
        current.applied_at = timezone.now()
        current.applied_by = actor
        current.save(update_fields=["status", "applied_at", "applied_by"])
        entry = ModelAuditEntry.objects.create(
            action=ModelAuditEntry.Action.THRESHOLDS_APPLIED,
            model_version=current.model_version,
            threshold_version=current,
            actor=actor,
            detail={"thresholds": current.thresholds},
        )
    proposal.refresh_from_db()
    return entry


def embeddings_cached(
    *, version: ModelVersion, kind: str, hashes: Sequence[str]
) -> dict[str, np.ndarray]:
    """The cached (chunks, d) arrays of these content hashes, those there are."""
    found = {}
    unique = list(set(hashes))
    for start in range(0, len(unique), 500):  # within SQLite's variable limit
        rows = Embedding.objects.filter(
            model_version=version,
            kind=kind,
            content_hash__in=unique[start : start + 500],
        ).values_list("content_hash", "chunks", "dim", "vectors")
        # Tuples, not model instances: a catalog rescore reads a few per listing.
        for key, chunks, dim, vectors in rows:
            found[key] = Embedding(chunks=chunks, dim=dim, vectors=vectors).as_array()
    return found


def _cached(version: ModelVersion, kind: str, hashes: Sequence[str]) -> dict:
    return embeddings_cached(version=version, kind=kind, hashes=hashes)


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
        pictures = {key: decode() for key, decode in missing.items()}
        found.update(_embed_and_store(version, pictures, engine))
    return [found[key][0] for key, _ in images]


def embeddings_images_isolated(
    *,
    version: ModelVersion,
    images: Sequence[tuple[str, Callable[[], Image.Image]]],
    engine: Callable[[], ClipEngine],
) -> tuple[dict[str, np.ndarray], dict[str, UnreadableImage]]:
    """Unit vectors by content hash for the images of several listings, cached,
    in one batched forward; an image that cannot be decoded is left out with its
    error, so it costs the others nothing. (vectors, errors), both by hash."""
    found = _cached(version, Embedding.Kind.IMAGE, [key for key, _ in images])
    pictures: dict[str, Image.Image] = {}
    errors: dict[str, UnreadableImage] = {}
    for key, decode in images:
        if key in found or key in pictures or key in errors:
            continue
        try:
            pictures[key] = decode()
        except UnreadableImage as exc:
            errors[key] = exc
    if pictures:
        found.update(_embed_and_store(version, pictures, engine))
    return {key: array[0] for key, array in found.items()}, errors


def _embed_and_store(
    version: ModelVersion,
    pictures: dict[str, Image.Image],
    engine: Callable[[], ClipEngine],
) -> dict[str, np.ndarray]:
    """Embed decoded pictures in one call (chunked by the engine's batch size) and
    cache them; (1, d) arrays by content hash."""
    vectors = engine().embed_images(list(pictures.values()))
    fresh = {key: vectors[n : n + 1] for n, key in enumerate(pictures)}
    _store(version, Embedding.Kind.IMAGE, fresh)
    return fresh


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
