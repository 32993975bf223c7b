"""Loads a CLIP-family checkpoint once per process and embeds images and texts.

torch and transformers are imported inside functions only: django-q2 forks its
workers from a parent that must never start torch's thread pools or hold a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from collections import defaultdict
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
# Windows of a text are padded to a multiple of this (up to the context) and batched
# with windows of the same padded length: a window's inputs, and so its vector,
# never depend on the other texts embedded beside it.
PAD_MULTIPLE = 16
# What a text may turn into; each value is the same for every token of one text, so
# a window of a long text gets it too.
TEXT_INPUT_FILL = {"input_ids": None, "attention_mask": 1, "token_type_ids": 0}
_PROBE_TEXTS = ("a red mug", "two blue striped sneakers, size 42")
# What CLIPMATCH_PRECISION may say; "auto" is resolved per machine by pick_precision.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# CPU features that run bf16 matrix products natively (x86, then ARM), as torch's
# cpuinfo names them; without one, bf16 on the CPU is emulated and slower than fp32.
NATIVE_BF16_CPU = ("amx_bf16", "avx512_bf16", "bf16", "sve_bf16")


class ModelLoadError(RuntimeError):
    """The configured model could not be found or loaded; never replaced silently."""


@dataclass(frozen=True)
class Family:
    """How a model family's authors feed it text, as their reference usage does."""

    name: str
    # Pooled at a fixed position (SigLIP's last token) and trained on texts padded
    # to the full context: every text is padded to it, or its vector shifts.
    pad_to_context: bool = False
    # RoBERTa counts positions from after its padding index: max_position_embeddings
    # minus (pad_token_id + 1) positions are usable.
    roberta_positions: bool = False


# Only families whose embeddings were checked against their documented reference
# usage (clipmatch/tests/test_families.py); any other model type is refused at load.
FAMILIES = {
    "clip": Family("CLIP"),
    "siglip": Family("SigLIP", pad_to_context=True),
    "siglip2": Family("SigLIP 2", pad_to_context=True),
    "altclip": Family("AltCLIP", roberta_positions=True),
    "chinese_clip": Family("Chinese-CLIP"),
    "blip": Family("BLIP"),
    "metaclip_2": Family("MetaCLIP 2"),
    "groupvit": Family("GroupViT"),
    "owlvit": Family("OWL-ViT", pad_to_context=True),
}


def supported_families() -> str:
    """The verified families, for messages to a person."""
    return ", ".join(family.name for family in FAMILIES.values())


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


def cpu_runs_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AMX, AVX512_BF16, ARM BF16)."""
    import torch

    capabilities = torch.cpu.get_capabilities()
    return any(capabilities.get(name) for name in NATIVE_BF16_CPU)


def pick_precision(precision: str, device: str) -> str:
    """The precision to run at on `device`: "auto" is the fastest this machine runs
    natively (bf16 on a CPU with bf16 instructions or a GPU that has it, fp16 on
    other GPUs, else fp32); fp16 on the CPU is refused, never run emulated."""
    import torch

    if precision not in PRECISIONS:
        raise ModelLoadError(
            f"Precision {precision!r} is not one of {', '.join(PRECISIONS)}."
        )
    on_cuda = device.startswith("cuda")
    if precision == "auto":
        if on_cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_runs_bf16() else "fp32"
    if precision == "fp16" and not on_cuda:
        raise ModelLoadError(
            "Precision 'fp16' runs on CUDA only, and this engine runs on the "
            f"{device}: use bf16, fp32 or auto there."
        )
    return precision


@dataclass(frozen=True)
class PixelPlan:
    """What a PIL-backend image processor does to an RGB image, done in one pass:
    its resize (same filter, same size rule), centre crop, rescale and normalise."""

    resample: int
    shortest_edge: int | None  # resize keeping the aspect ratio, else to `size`
    size: tuple[int, int] | None  # (height, width)
    crop: tuple[int, int] | None
    scale: float | None
    mean: np.ndarray | None
    std: np.ndarray | None

    def target(self, width: int, height: int) -> tuple[int, int]:
        """(height, width) after the resize, by the processor's own rule."""
        if self.size is not None:
            return self.size
        if self.shortest_edge is None:
            return height, width
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.shortest_edge * long / short)
        if width <= height:
            return new_long, self.shortest_edge
        return self.shortest_edge, new_long


def pixel_plan(image_processor) -> tuple[PixelPlan | None, str]:
    """The processor's steps as a PixelPlan, or None and why it cannot be matched:
    any processor that does more than resize, crop, rescale and normalise."""
    from transformers.image_processing_backends import PilBackend

    kind = type(image_processor).__name__
    if not isinstance(image_processor, PilBackend):
        return None, f"{kind} is not a PIL-backend processor"
    if type(image_processor)._preprocess is not PilBackend._preprocess:
        return None, f"{kind} preprocesses in steps of its own"
    if getattr(image_processor, "do_pad", False):
        return None, f"{kind} pads its images"
    size = image_processor.size if image_processor.do_resize else None
    shortest = size_hw = None
    if size is not None:
        if size.shortest_edge and not size.longest_edge and not size.height:
            shortest = int(size.shortest_edge)
        elif size.height and size.width and not size.shortest_edge:
            size_hw = (int(size.height), int(size.width))
        else:
            return None, f"{kind} resizes by a rule clipmatch does not copy ({size})"
    crop = None
    if getattr(image_processor, "do_center_crop", False):
        cut = image_processor.crop_size
        crop = (int(cut.height), int(cut.width))
    normalise = image_processor.do_normalize
    plan = PixelPlan(
        resample=int(image_processor.resample),
        shortest_edge=shortest,
        size=size_hw,
        crop=crop,
        scale=float(image_processor.rescale_factor)
        if image_processor.do_rescale
        else None,
        mean=np.asarray(image_processor.image_mean, dtype=np.float32)
        if normalise
        else None,
        std=np.asarray(image_processor.image_std, dtype=np.float32)
        if normalise
        else None,
    )
    return plan, ""


def _input_side(image_processor) -> int | None:
    """The longest side of what the model is fed, from the processor's config: a
    decode never needs more than this on its shorter side."""
    patches = getattr(image_processor, "max_num_patches", None)
    patch = getattr(image_processor, "patch_size", None)
    if isinstance(patches, int) and isinstance(patch, int):
        # NaFlex keeps the aspect ratio within max_num_patches: its shorter side is
        # at most sqrt(max_num_patches) patches, whatever the shape.
        return math.isqrt(patches) * patch
    sides = []
    for name in ("size", "crop_size"):
        value = getattr(image_processor, name, None)
        for key in ("shortest_edge", "height", "width"):
            side = getattr(value, key, None) if value is not None else None
            if isinstance(side, int):
                sides.append(side)
    return max(sides) if sides else None


class ClipEngine:
    """One loaded model with its processor; embeddings come back L2-normalised.

    Images and texts go through the checkpoint's own processor and tokenizer, with
    its family's padding: what the family's reference usage feeds the model.
    """

    def __init__(
        self,
        source: ModelSource,
        device: str = "auto",
        threads: int = 1,
        batch_size: int = 32,
        precision: str = "auto",
    ):
        import torch
        from transformers import AutoProcessor

        if threads:
            torch.set_num_threads(threads)
        self.source = source
        self.batch_size = batch_size
        self.device = pick_device(device)
        self.precision = pick_precision(precision, self.device)
        self.dtype = getattr(torch, TORCH_DTYPES[self.precision])
        self.family = _family_of(source)
        try:
            self.model, loading = _load_model(source.path, self.dtype)
            self.processor = AutoProcessor.from_pretrained(source.path)
        except Exception as exc:
            raise ModelLoadError(
                f"Could not load model {source.ref!r} from {source.path}: "
                f"{exc.__class__.__name__}: {exc}"
            ) from exc
        missing = sorted(loading.get("missing_keys") or ())
        if missing:
            # e.g. a BLIP retrieval checkpoint read as a BlipModel: its text tower
            # would be random and every score noise.
            raise ModelLoadError(
                f"{source.ref!r} lacks {len(missing)} weights of its "
                f"{type(self.model).__name__} ({', '.join(missing[:3])}, ...): "
                "they would be random. Save the model with save_pretrained from "
                "the class AutoModel loads."
            )
        for method in ("get_image_features", "get_text_features"):
            if not hasattr(self.model, method):
                raise ModelLoadError(
                    f"{source.ref!r} is not a CLIP-family model: it has no {method}()."
                )
        self.model = self.model.to(self.device).eval()
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        self.image_processor = getattr(self.processor, "image_processor", None)
        if self.tokenizer is None or self.image_processor is None:
            raise ModelLoadError(f"{source.ref!r} has no tokenizer or image processor.")
        self.context_length = self._context_length()
        self.text_inputs, self.prefix, self.suffix = self._text_frame()
        self.input_side = _input_side(self.image_processor)
        self.pixel_plan, why = pixel_plan(self.image_processor)
        if self.pixel_plan is None:
            logger.info(
                "%s (%s): images go through its own processor, not the fast path: %s.",
                source.ref,
                self.family.name,
                why,
            )

    def _context_length(self) -> int:
        text_config = getattr(self.model.config, "text_config", self.model.config)
        positions = getattr(text_config, "max_position_embeddings", None)
        if self.family.roberta_positions and isinstance(positions, int):
            positions -= (getattr(text_config, "pad_token_id", None) or 0) + 1
        limits = [positions, getattr(self.tokenizer, "model_max_length", None)]
        usable = [n for n in limits if isinstance(n, int) and 0 < n < 100_000]
        if not usable:
            raise ModelLoadError("Cannot tell the text context length of this model.")
        return min(usable)

    def _text_frame(self) -> tuple[tuple[str, ...], list[int], list[int]]:
        """What the processor gives the model for a text, and the special tokens
        its tokenizer puts before and after the text's own tokens."""
        keys = tuple(self.processor(text=[_PROBE_TEXTS[0]]).keys())
        unknown = [key for key in keys if key not in TEXT_INPUT_FILL]
        if "input_ids" not in keys or unknown:
            raise ModelLoadError(
                f"{self.source.ref!r}: its processor turns a text into "
                f"{', '.join(keys)}; clipmatch can only window input_ids with an "
                "attention mask and token types."
            )
        frames = set()
        for text in _PROBE_TEXTS:
            framed = self.tokenizer(text)["input_ids"]
            bare = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            starts = [
                i
                for i in range(len(framed) - len(bare) + 1)
                if framed[i : i + len(bare)] == bare
            ]
            if not bare or not starts:
                raise ModelLoadError(
                    f"{self.source.ref!r}: its tokenizer does not put a text's own "
                    "tokens between fixed special tokens; clipmatch cannot window it."
                )
            start = starts[0]
            frames.add((tuple(framed[:start]), tuple(framed[start + len(bare) :])))
        if len(frames) != 1:
            raise ModelLoadError(
                f"{self.source.ref!r}: its tokenizer frames different texts with "
                "different special tokens; clipmatch cannot window it."
            )
        prefix, suffix = frames.pop()
        if self.context_length <= len(prefix) + len(suffix):
            raise ModelLoadError(f"{self.source.ref!r}: its text context is empty.")
        return keys, list(prefix), list(suffix)

    @property
    def version(self) -> str:
        return self.source.version

    def image_inputs(self, images: list) -> dict:
        """Model inputs for RGB PIL images, on the CPU: the processor's steps done
        in one pass where they could be matched (pixel_plan), else the processor.
        The app and fine-tuning both come here, so both see the same pixels."""
        if self.pixel_plan is None or not images:
            return self.processor_image_inputs(images)
        return {"pixel_values": pixel_values(images, self.pixel_plan)}

    def processor_image_inputs(self, images: list) -> dict:
        """What the checkpoint's own processor makes of RGB PIL images: the
        reference the fast path is tested against. Every tensor of it (SigLIP 2's
        patch mask and spatial shapes too) goes to the model."""
        return dict(self.processor(images=images, return_tensors="pt"))

    def image_features(self, inputs: dict):
        """The model's image features for processor inputs, not normalised;
        gradients flow unless the caller turns them off (fine-tuning needs them)."""
        inputs = {key: self._on_device(value) for key, value in inputs.items()}
        return _feature_tensor(self.model.get_image_features(**inputs), "image")

    def _on_device(self, tensor):
        """A tensor moved to the model's device; pixels in the model's dtype."""
        if tensor.is_floating_point():
            return tensor.to(self.device, dtype=self.dtype)
        return tensor.to(self.device)

    def embed_image_inputs(
        self, inputs: dict, batch_size: int | None = None
    ) -> np.ndarray:
        """Return an (n, d) float32 array of unit vectors for processor inputs."""
        import torch

        batch_size = batch_size or self.batch_size
        rows = len(inputs["pixel_values"])
        chunks = []
        for start in range(0, rows, batch_size):
            batch = {
                key: value[start : start + batch_size] for key, value in inputs.items()
            }
            with torch.inference_mode():
                chunks.append(_normalise(self.image_features(batch)))
        if not chunks:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(chunks)

    def embed_images(self, images: list, batch_size: int | None = None) -> np.ndarray:
        """Return an (n, d) float32 array of unit vectors, one per RGB PIL image."""
        batch_size = batch_size or self.batch_size
        chunks = [
            self.embed_image_inputs(
                self.image_inputs(images[start : start + batch_size])
            )
            for start in range(0, len(images), batch_size)
        ]
        if not chunks:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(chunks)

    def text_chunks(self, text: str) -> list[list[int]]:
        """Split a text into token windows that fit the model's context, overlapping.

        CLIP would silently drop everything past its context (77 tokens for the
        OpenAI models); a long description is instead embedded window by window and
        each window is kept, so that the best-matching part of it can be found.
        """
        # The text is tokenized whole, with its special tokens, exactly as the
        # reference usage does; the tokens between them are the text's own.
        framed = self.tokenizer(text, verbose=False)["input_ids"]
        ids = framed[len(self.prefix) : len(framed) - len(self.suffix)]
        width = self.context_length - len(self.prefix) - len(self.suffix)
        if len(ids) <= width:
            return [ids]
        stride = max(1, width * 3 // 4)
        windows = []
        for start in range(0, len(ids), stride):
            windows.append(ids[start : start + width])
            if start + width >= len(ids):
                break
        return windows

    def text_inputs_for(self, windows: list[list[int]]) -> dict:
        """Model inputs for windows of equal padded length, as the tokenizer pads."""
        rows = []
        for window in windows:
            ids = self.prefix + window + self.suffix
            row = {"input_ids": ids}
            for key in self.text_inputs:
                if key != "input_ids":
                    row[key] = [TEXT_INPUT_FILL[key]] * len(ids)
            rows.append(row)
        padded = self.tokenizer.pad(
            rows,
            padding="max_length",
            max_length=self._padded_length(max(len(r["input_ids"]) for r in rows)),
            return_tensors="pt",
        )
        return {key: padded[key] for key in self.text_inputs}

    def text_features(self, windows: list[list[int]]):
        """The model's text features for windows of token ids, not normalised;
        gradients flow unless the caller turns them off (fine-tuning needs them)."""
        inputs = self.text_inputs_for(windows)
        inputs = {key: self._on_device(value) for key, value in inputs.items()}
        return _feature_tensor(self.model.get_text_features(**inputs), "text")

    def _padded_length(self, length: int) -> int:
        if self.family.pad_to_context:
            return self.context_length
        return min(self.context_length, -(-length // PAD_MULTIPLE) * PAD_MULTIPLE)

    def embed_texts(
        self, texts: list[str], batch_size: int | None = None
    ) -> list[np.ndarray]:
        """Return, per text, a (chunks, d) float32 array of unit vectors."""
        import torch

        batch_size = batch_size or self.batch_size
        windows, owners = [], []
        groups: dict[int, list[int]] = defaultdict(list)
        for index, text in enumerate(texts):
            for window in self.text_chunks(text):
                total = len(self.prefix) + len(window) + len(self.suffix)
                groups[self._padded_length(total)].append(len(windows))
                windows.append(window)
                owners.append(index)
        vectors: list[np.ndarray | None] = [None] * len(windows)
        for members in groups.values():
            for start in range(0, len(members), batch_size):
                batch = members[start : start + batch_size]
                with torch.inference_mode():
                    features = self.text_features([windows[n] for n in batch])
                for n, vector in zip(batch, _normalise(features), strict=True):
                    vectors[n] = vector
        result: list[list[np.ndarray]] = [[] for _ in texts]
        for owner, vector in zip(owners, vectors, strict=True):
            result[owner].append(vector)
        return [np.stack(rows).astype(np.float32) for rows in result]


def pixel_values(images: list, plan: PixelPlan):
    """An (n, 3, h, w) float32 tensor: each image resized with PIL as the processor
    does (on the already reduced decode), cropped, then all rescaled and normalised
    at once; no full-size array of any image is made."""
    import torch

    crops = []
    for image in images:
        height, width = plan.target(image.width, image.height)
        if (width, height) != image.size:
            image = image.resize((width, height), resample=plan.resample)
        array = np.asarray(image)
        if plan.crop is not None:
            array = _centre_crop(array, *plan.crop)
        crops.append(array)
    batch = np.stack(crops).astype(np.float32)
    if plan.scale is not None:
        batch *= np.float32(plan.scale)
    if plan.mean is not None:
        batch -= plan.mean
        batch /= plan.std
    return torch.from_numpy(batch.transpose(0, 3, 1, 2).copy())


def _centre_crop(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """transformers' center_crop: the same offsets, zero padding where too small."""
    rows, cols = array.shape[:2]
    top, left = (rows - height) // 2, (cols - width) // 2
    if top >= 0 and left >= 0:
        return array[top : top + height, left : left + width]
    new_rows, new_cols = max(rows, height), max(cols, width)
    padded = np.zeros((new_rows, new_cols, array.shape[2]), dtype=array.dtype)
    top_pad = math.ceil((new_rows - rows) / 2)
    left_pad = math.ceil((new_cols - cols) / 2)
    padded[top_pad : top_pad + rows, left_pad : left_pad + cols] = array
    top, left = top + top_pad, left + left_pad
    return padded[
        max(0, top) : min(new_rows, top + height),
        max(0, left) : min(new_cols, left + width),
    ]


def _load_model(path: Path, dtype):
    """The checkpoint's AutoModel in `dtype`, with transformers' loading info.

    Read straight into that dtype (a family's _keep_in_fp32_modules stay fp32).
    Converting safetensors (to bf16 or fp16) reads each tensor with pread instead
    of through a memory map: the mapped file's pages would count towards the
    process's memory beside the converted weights (ViT-B/32 at bf16: 1.30 GB peak
    mapped, 0.75 GB read). At the stored dtype the map is cheaper: it shares pages.
    """
    import contextlib

    import torch
    from transformers import AutoConfig, AutoModel

    files = _safetensors_files(path)
    if dtype == torch.float32 or not files:
        return AutoModel.from_pretrained(path, output_loading_info=True, dtype=dtype)
    from safetensors import safe_open

    config = AutoConfig.from_pretrained(path)
    model_class = AutoModel._model_mapping[type(config)]
    # A family that keeps modules in fp32 gets its tensors as stored, for
    # transformers to convert; the others converted here, a few MB at a time.
    convert = not (
        model_class._keep_in_fp32_modules or model_class._keep_in_fp32_modules_strict
    )
    with contextlib.ExitStack() as stack:
        state = {}
        for file in files:
            handle = stack.enter_context(
                safe_open(str(file), framework="pt", device="cpu", backend="pread")
            )
            for key in handle.keys():
                piece = handle.get_slice(key)
                state[key] = _converted(handle, key, piece, dtype) if convert else piece
        return model_class.from_pretrained(
            None,
            config=config,
            state_dict=state,
            output_loading_info=True,
            dtype=dtype,
        )


FLOAT_STORED = {"F64", "F32", "F16", "BF16"}
CONVERT_CHUNK_BYTES = 8 << 20


def _converted(handle, key: str, piece, dtype):
    """A stored tensor in `dtype`, read a chunk of rows at a time: the largest
    (a text tower's token embedding, 100 MB in fp32) is never held whole twice."""
    import torch

    shape = piece.get_shape()
    numel = math.prod(shape)
    if piece.get_dtype() not in FLOAT_STORED:
        return handle.get_tensor(key)
    if not shape or numel * 4 <= CONVERT_CHUNK_BYTES:
        return handle.get_tensor(key).to(dtype)
    out = torch.empty(shape, dtype=dtype)
    rows = max(1, CONVERT_CHUNK_BYTES // (4 * max(1, numel // shape[0])))
    for start in range(0, shape[0], rows):
        stop = min(shape[0], start + rows)
        out[start:stop] = piece[start:stop]
    return out


def _safetensors_files(path: Path) -> list[Path]:
    """The checkpoint's safetensors files (its index's shards, if sharded)."""
    index = path / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [path / shard for shard in shards]
    single = path / "model.safetensors"
    return [single] if single.exists() else []


def _family_of(source: ModelSource) -> Family:
    """The checkpoint's family from its config.json, refused unless verified."""
    try:
        config = json.loads((source.path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{source.path}/config.json is unreadable: {exc}") from exc
    model_type = config.get("model_type")
    if not model_type:
        raise ModelLoadError(
            f"Could not load model {source.ref!r} from {source.path}: its "
            "config.json names no model_type."
        )
    family = FAMILIES.get(model_type)
    if family is None:
        architectures = ", ".join(config.get("architectures") or ()) or "no class"
        raise ModelLoadError(
            f"{source.ref!r} is a {model_type} checkpoint ({architectures}), a "
            "model family clipmatch has not verified: its scores could be wrong "
            f"without any error. Supported families: {supported_families()}."
        )
    return family


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
    precision: str = "auto",
    fingerprint: str | None = None,
    hub_timeout: float | None = None,
) -> ClipEngine:
    """The process's engine for a model, loaded on first use (never at import).

    With `fingerprint`, refuse a model whose files changed since that version was
    recorded, so that no embedding is ever stored under the wrong version.
    """
    source = resolve_model(ref, hub_timeout=hub_timeout)
    if fingerprint is not None and source.fingerprint != fingerprint:
        raise ModelLoadError(
            f"Model {ref!r} changed on disk while it was in use "
            f"({fingerprint[:12]} became {source.fingerprint[:12]})."
        )
    # Keyed by pid too: an engine inherited through fork is never reused by a child.
    key = (ref, source.fingerprint, device, precision, threads, batch_size, os.getpid())
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            logger.info(
                "Loading CLIP model %s on %s at %s (pid %s)",
                ref,
                device,
                precision,
                os.getpid(),
            )
            engine = ClipEngine(source, device, threads, batch_size, precision)
            _engines.clear()
            _engines[key] = engine
    return engine
