"""The model: loading it, freezing parts of it, embedding pairs, WiSE-FT mixing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clipmatch.inference.sources import META_FILE
from training.finetune.data import PairSet
from training.finetune.params import FinetuneError

EMBED_CHUNK = 256  # images or texts per forward pass when scoring


def load_model(path: str | Path, device: str):
    """The base model as the app loads it (its family checked, no network): the
    engine whose embedding path fine-tuning trains through and measures with."""
    from clipmatch.inference.engine import ClipEngine
    from clipmatch.inference.sources import ModelLoadError, resolve_model

    path = Path(path)
    if not (path / "config.json").exists():
        raise FinetuneError(f"--base {path} is not a save_pretrained folder.")
    try:
        # threads=0: the run has set torch's threads already; fp32 because it
        # trains through the engine (bf16 weights would take the updates coarsely).
        return ClipEngine(
            resolve_model(str(path)), device=device, threads=0, precision="fp32"
        )
    except ModelLoadError as exc:
        raise FinetuneError(f"--base: {exc}") from exc


def read_meta(path: str | Path) -> dict:
    """The model folder's clipmatch.json (thresholds, prompts), or nothing."""
    meta = Path(path) / META_FILE
    return json.loads(meta.read_text()) if meta.exists() else {}


# What follows a tower's blocks and feeds the embedding: kept trainable with the last
# blocks under --freeze backbone. SigLIP has no projection layers; its `head` (the
# vision tower's attention pooling, the text tower's linear map) plays their part.
TOWER_TOPS = ("post_layernorm", "final_layer_norm", "head")


def freeze(model, how: str, trainable_blocks: int) -> int:
    """Freeze a tower, or every block but the last few of each; returns the number
    of trainable parameters. Works on every verified family: a tower is
    `vision_model` or `text_model`, its blocks are wherever the family keeps them
    (`encoder.layers`, BERT's `encoder.layer`, AltCLIP's `roberta.encoder.layers`,
    GroupViT's stages), and a projection is frozen with its tower when there is one."""
    if how in ("vision", "backbone"):
        _freeze_tower(model.vision_model, how, trainable_blocks)
    if how in ("text", "backbone"):
        _freeze_tower(model.text_model, how, trainable_blocks)
    projection = {"vision": "visual_projection", "text": "text_projection"}.get(how)
    if projection and getattr(model, projection, None) is not None:
        getattr(model, projection).requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def tower_blocks(tower) -> list:
    """A tower's transformer blocks, in order."""
    import torch

    blocks = []
    for name, module in tower.named_modules():
        if isinstance(module, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] in (
            "layers",
            "layer",
        ):
            blocks.extend(module)
    if not blocks:
        raise FinetuneError(
            f"--freeze backbone: no blocks found in {type(tower).__name__}."
        )
    return blocks


def _freeze_tower(tower, how: str, trainable_blocks: int) -> None:
    tower.requires_grad_(False)
    if how == "backbone":
        blocks = tower_blocks(tower)
        for block in blocks[max(0, len(blocks) - trainable_blocks) :]:
            block.requires_grad_(True)
        for name in TOWER_TOPS:
            if getattr(tower, name, None) is not None:
                getattr(tower, name).requires_grad_(True)


def snapshot(model) -> dict:
    """A copy of the model's weights that later training leaves alone."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def wise_mix(base_state: dict, tuned_state: dict, alpha: float) -> dict:
    """WiSE-FT: (1 - alpha) * base + alpha * tuned, for floating-point weights."""
    mixed = {}
    for key, tuned in tuned_state.items():
        base = base_state[key]
        if tuned.is_floating_point():
            mixed[key] = base * (1 - alpha) + tuned * alpha
        else:
            mixed[key] = tuned
    return mixed


def encode_images(engine, inputs: dict):
    """Unit image vectors with gradients, through the engine's own path."""
    import torch.nn.functional as F

    return F.normalize(engine.image_features(inputs).float(), dim=-1)


def encode_texts(engine, texts: Sequence[str]):
    """Unit text vectors with gradients: each text's first window, tokenized and
    padded as the app does (the loss sees what the app's first window sees)."""
    import torch.nn.functional as F

    windows = [engine.text_chunks(text)[0] for text in texts]
    return F.normalize(engine.text_features(windows).float(), dim=-1)


def similarities(engine, data: PairSet) -> np.ndarray:
    """Every pair's score exactly as the app computes it (clip_batch_test, the
    scoring of a listing): the cosine of the image with the text's best window."""
    from clipmatch.inference.scoring import best_chunk_similarity

    engine.model.eval()
    images = engine.embed_image_inputs(data.images, batch_size=EMBED_CHUNK)
    unique = list(dict.fromkeys(data.texts))
    windows = dict(
        zip(unique, engine.embed_texts(unique, batch_size=EMBED_CHUNK), strict=True)
    )
    return np.array(
        [
            best_chunk_similarity(images[row], windows[text])
            for row, text in zip(data.image_of, data.texts, strict=True)
        ],
        dtype=np.float64,
    )
