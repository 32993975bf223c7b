"""The model: loading it, freezing parts of it, embedding pairs, WiSE-FT mixing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clipmatch.inference.engine import META_FILE
from training.finetune.data import PairSet
from training.finetune.params import FinetuneError

EMBED_CHUNK = 256  # images or texts per forward pass when scoring


def load_model(path: str | Path):
    """Model and processor from a save_pretrained folder, float32, no network."""
    from transformers import AutoModel, AutoProcessor

    path = Path(path)
    if not (path / "config.json").exists():
        raise FinetuneError(f"--base {path} is not a save_pretrained folder.")
    model = AutoModel.from_pretrained(path, local_files_only=True).float()
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    for method in ("get_image_features", "get_text_features"):
        if not hasattr(model, method):
            raise FinetuneError(f"{path} is not a CLIP-family model: no {method}().")
    return model, processor


def read_meta(path: str | Path) -> dict:
    """The model folder's clipmatch.json (thresholds, prompts), or nothing."""
    meta = Path(path) / META_FILE
    return json.loads(meta.read_text()) if meta.exists() else {}


def freeze(model, how: str, trainable_blocks: int) -> int:
    """Freeze a tower, or every block but the last few of each; returns the number
    of trainable parameters."""
    if how in ("vision", "backbone"):
        _freeze_tower(model.vision_model, how, trainable_blocks)
    if how in ("text", "backbone"):
        _freeze_tower(model.text_model, how, trainable_blocks)
    if how == "vision":
        model.visual_projection.requires_grad_(False)
    if how == "text":
        model.text_projection.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _freeze_tower(tower, how: str, trainable_blocks: int) -> None:
    tower.requires_grad_(False)
    if how == "backbone":
        layers = tower.encoder.layers
        for layer in layers[max(0, len(layers) - trainable_blocks) :]:
            layer.requires_grad_(True)
        for name in ("post_layernorm", "final_layer_norm"):
            if hasattr(tower, name):
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


def _features(output):
    """transformers 5 returns an output object where 4.x returned a tensor."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    for name in ("image_embeds", "text_embeds", "pooler_output"):
        value = getattr(output, name, None)
        if value is not None:
            return value
    return output[0]


def encode_images(model, pixels, device: str):
    import torch.nn.functional as F

    feats = model.get_image_features(pixel_values=pixels.to(device))
    return F.normalize(_features(feats).float(), dim=-1)


def encode_texts(model, tokenizer, texts: Sequence[str], device: str):
    import torch.nn.functional as F

    tok = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
    feats = model.get_text_features(
        input_ids=tok["input_ids"].to(device),
        attention_mask=tok["attention_mask"].to(device),
    )
    return F.normalize(_features(feats).float(), dim=-1)


def similarities(model, tokenizer, data: PairSet, device: str) -> np.ndarray:
    """Raw cosine of every pair's image with its text (what the app thresholds)."""
    import torch

    model.eval()
    with torch.inference_mode():
        image_vecs = torch.cat(
            [
                encode_images(model, data.pixels[s : s + EMBED_CHUNK], device)
                for s in range(0, len(data.pixels), EMBED_CHUNK)
            ]
        )
        unique = list(dict.fromkeys(data.texts))
        text_vecs = torch.cat(
            [
                encode_texts(model, tokenizer, unique[s : s + EMBED_CHUNK], device)
                for s in range(0, len(unique), EMBED_CHUNK)
            ]
        )
    row = {t: n for n, t in enumerate(unique)}
    img = image_vecs[data.image_of]
    txt = text_vecs[[row[t] for t in data.texts]]
    return (img * txt).sum(-1).cpu().numpy().astype(np.float64)
