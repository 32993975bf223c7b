"""Loads a CLIP-family checkpoint once per process and embeds images and texts.

torch and transformers are imported inside functions only: django-q2 forks its
workers from a parent that must never start torch's thread pools or hold a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

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


def resolve_model(ref: str) -> ModelSource:
    """Find a local directory or a hub id's cached snapshot and fingerprint it."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return _local_source(ref, path.resolve())
    if path.is_absolute() or ref.startswith((".", "~")) or ref.count("/") > 1:
        raise ModelLoadError(f"Model directory {ref!r} does not exist.")
    return _hub_source(ref)


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


def _hub_source(ref: str) -> ModelSource:
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(ref, local_files_only=True)
    except Exception:
        try:
            local = snapshot_download(ref)
        except Exception as exc:
            raise ModelLoadError(
                f"Model {ref!r} is neither a local directory nor available from the "
                f"Hugging Face hub: {exc.__class__.__name__}: {exc}"
            ) from exc
    path = Path(local)
    # The snapshot folder's name is the hub commit: an exact, stable version.
    return ModelSource(
        ref=ref, path=path, fingerprint=path.name, name=ref, meta=_read_meta(path)
    )


def _read_meta(path: Path) -> dict[str, Any]:
    meta_path = path / META_FILE
    if not meta_path.exists():
        return {}
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{meta_path} is not valid JSON: {exc}") from exc


def _feature_tensor(output: Any, kind: str):
    """transformers 5 returns an output object where 4.x returned a tensor."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    for name in (f"{kind}_embeds", "pooler_output"):
        value = getattr(output, name, None)
        if value is not None:
            return value
    raise ModelLoadError(f"The model's get_{kind}_features returned {type(output)!r}.")


def pick_device(device: str) -> str:
    """The device to run on: "auto" is CUDA where there is one, else the CPU; CUDA
    asked for and missing is an error, never a silent fallback to the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            f"Device {device!r} was asked for, but no CUDA device is here."
        )
    return device


class ClipEngine:
    """One loaded model with its processor; embeddings come back L2-normalised."""

    def __init__(
        self,
        source: ModelSource,
        device: str = "auto",
        threads: int = 1,
        batch_size: int = 32,
    ):
        import torch
        from transformers import AutoModel, AutoProcessor

        if threads:
            torch.set_num_threads(threads)
        self.source = source
        self.batch_size = batch_size
        self.device = pick_device(device)
        try:
            self.model = AutoModel.from_pretrained(source.path)
            self.processor = AutoProcessor.from_pretrained(source.path)
        except Exception as exc:
            raise ModelLoadError(
                f"Could not load model {source.ref!r} from {source.path}: "
                f"{exc.__class__.__name__}: {exc}"
            ) from exc
        for method in ("get_image_features", "get_text_features"):
            if not hasattr(self.model, method):
                raise ModelLoadError(
                    f"{source.ref!r} is not a CLIP-family model: it has no {method}()."
                )
        self.model = self.model.float().to(self.device).eval()
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        self.image_processor = getattr(self.processor, "image_processor", None)
        if self.tokenizer is None or self.image_processor is None:
            raise ModelLoadError(f"{source.ref!r} has no tokenizer or image processor.")
        self.context_length = self._context_length()

    def _context_length(self) -> int:
        text_config = getattr(self.model.config, "text_config", self.model.config)
        limits = [getattr(text_config, "max_position_embeddings", None)]
        limits.append(getattr(self.tokenizer, "model_max_length", None))
        usable = [n for n in limits if isinstance(n, int) and 0 < n < 100_000]
        if not usable:
            raise ModelLoadError("Cannot tell the text context length of this model.")
        return min(usable)

    @property
    def version(self) -> str:
        return self.source.version

    def embed_images(self, images: list, batch_size: int | None = None) -> np.ndarray:
        """Return an (n, d) float32 array of unit vectors, one per RGB PIL image."""
        import torch

        batch_size = batch_size or self.batch_size
        chunks = []
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            pixels = self.image_processor(images=batch, return_tensors="pt")
            pixels = pixels["pixel_values"].to(self.device)
            with torch.inference_mode():
                out = self.model.get_image_features(pixel_values=pixels)
            chunks.append(_normalise(_feature_tensor(out, "image")))
        if not chunks:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(chunks)

    def text_chunks(self, text: str) -> list[list[int]]:
        """Split a text into token windows that fit the model's context, overlapping.

        CLIP would silently drop everything past its context (77 tokens for the
        OpenAI models); a long description is instead embedded window by window and
        each window is kept, so that the best-matching part of it can be found.
        """
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        width = self.context_length - 2  # room for the start and end tokens
        if len(ids) <= width:
            return [ids]
        stride = max(1, width * 3 // 4)
        windows = []
        for start in range(0, len(ids), stride):
            windows.append(ids[start : start + width])
            if start + width >= len(ids):
                break
        return windows

    def embed_texts(
        self, texts: list[str], batch_size: int | None = None
    ) -> list[np.ndarray]:
        """Return, per text, a (chunks, d) float32 array of unit vectors."""
        import torch

        batch_size = batch_size or self.batch_size
        owners, windows = [], []
        for index, text in enumerate(texts):
            for window in self.text_chunks(text):
                owners.append(index)
                windows.append(window)
        bos, eos = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        pad = eos if pad is None else pad
        vectors = []
        for start in range(0, len(windows), batch_size):
            batch = windows[start : start + batch_size]
            rows = [
                ([bos] if bos is not None else [])
                + w
                + ([eos] if eos is not None else [])
                for w in batch
            ]
            length = max(len(r) for r in rows)
            input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), length), dtype=torch.long)
            for i, row in enumerate(rows):
                input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
                mask[i, : len(row)] = 1
            with torch.inference_mode():
                out = self.model.get_text_features(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                )
            vectors.append(_normalise(_feature_tensor(out, "text")))
        flat = np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32)
        result: list[list[np.ndarray]] = [[] for _ in texts]
        for owner, vector in zip(owners, flat, strict=True):
            result[owner].append(vector)
        return [np.stack(rows).astype(np.float32) for rows in result]


def _normalise(tensor) -> np.ndarray:
    array = tensor.detach().float().cpu().numpy()
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return (array / np.clip(norms, 1e-12, None)).astype(np.float32)


_engines: dict[tuple, ClipEngine] = {}
_lock = threading.Lock()


def load_engine(
    ref: str,
    *,
    device: str = "auto",
    threads: int = 1,
    batch_size: int = 32,
    fingerprint: str | None = None,
) -> ClipEngine:
    """The process's engine for a model, loaded on first use (never at import).

    With `fingerprint`, refuse a model whose files changed since that version was
    recorded, so that no embedding is ever stored under the wrong version.
    """
    source = resolve_model(ref)
    if fingerprint is not None and source.fingerprint != fingerprint:
        raise ModelLoadError(
            f"Model {ref!r} changed on disk while it was in use "
            f"({fingerprint[:12]} became {source.fingerprint[:12]})."
        )
    # Keyed by pid too: an engine inherited through fork is never reused by a child.
    key = (ref, source.fingerprint, device, threads, batch_size, os.getpid())
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            logger.info(
                "Loading CLIP model %s on %s (pid %s)", ref, device, os.getpid()
            )
            engine = ClipEngine(source, device, threads, batch_size)
            _engines.clear()
            _engines[key] = engine
    return engine
