"""Loads a CLIP-family checkpoint once per process and embeds images and texts.

torch and transformers are imported inside functions only: django-q2 forks its
workers from a parent that must never start torch's thread pools or hold a model.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipmatch.inference.pixels import decode_side, pixel_plan, pixel_values
from clipmatch.inference.sources import ModelLoadError, ModelSource, resolve_model

logger = logging.getLogger(__name__)

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


def feature_tensor(output: Any, kind: str):
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
        self.input_side = decode_side(self.image_processor)
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
        return feature_tensor(self.model.get_image_features(**inputs), "image")

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
        return feature_tensor(self.model.get_text_features(**inputs), "text")

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
    # "auto" resolved first: asked for at the device and precision it stands for,
    # the same engine answers. A worker preloads at CLIPMATCH_PRECISION ("auto" by
    # default) and its tasks ask at the precision the model version recorded
    # ("bf16"): keyed by the words, the first task loaded the model a second time.
    device = pick_device(device)
    precision = pick_precision(precision, device)
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
