"""An image processor's steps done in one pass on an already reduced decode: its
resize (same filter, same size rule), centre crop, rescale and normalise."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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


def decode_side(image_processor) -> int | None:
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
