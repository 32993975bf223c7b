"""Image decoding as the app does it: the core decoder under the settings' limits.

The web request only inspects (`inspect_image`: cheap, bounded); the worker, and
the check endpoint that scores in the request, decode (`decode_image`), reduced on
the way to what a CLIP model looks at, within the decode memory budget.
"""

from __future__ import annotations

from typing import BinaryIO

from clipmatch import conf
from clipmatch.inference import images as core
from clipmatch.inference.images import DecodedImage, ImageInfo, UnreadableImage
from clipmatch.inference.photos import QUALITY_SIDE

# The shorter side a decode is reduced to, no less: CLIP models look at 224 to 448
# pixels, and a box reduction this far above that changes nothing they see.
DECODE_MIN_SIDE = 512


def _limits() -> dict:
    """The settings' limits, read at each call."""
    return {
        "max_pixels": conf.get("MAX_IMAGE_PIXELS"),
        "max_bytes": conf.get("MAX_IMAGE_BYTES"),
        "max_decode_bytes": conf.get("MAX_IMAGE_DECODE_BYTES"),
        "formats": conf.get("IMAGE_FORMATS"),
    }


def decode_image(
    source: bytes | BinaryIO, *, input_side: int | None = None
) -> DecodedImage:
    """Decode untrusted bytes under CLIPMATCH's size, pixel, memory and format
    limits, reduced to no less than DECODE_MIN_SIDE on the shorter side, or, for a
    model that looks at `input_side` pixels (ClipEngine.input_side), to twice that:
    its processor's resize then still averages at least two decoded pixels into
    each of its own, as it does from the full-size image (and to no less than the
    photo quality measures look at)."""
    # Never below the photo quality measures' own copy: a photo reduced further
    # looks sharper than it is (the blur finding would miss it).
    min_side = max(2 * input_side, QUALITY_SIDE) if input_side else DECODE_MIN_SIDE
    return core.decode_image(source, **_limits(), min_side=min_side)


def inspect_image(source: bytes | BinaryIO) -> ImageInfo:
    """The request's checks: everything cheap, nothing decoded at full size."""
    return core.inspect_image(source, **_limits())


def validate_image_file(file) -> None:
    """Field validator: forms, the admin's too, refuse what scoring could not read."""
    from django.core.exceptions import ValidationError

    max_bytes = conf.get("MAX_IMAGE_BYTES")
    size = getattr(file, "size", None)
    if size and size > max_bytes:  # refuse before reading a byte of it
        raise ValidationError(
            f"Image too large: {size:,} bytes, the limit is {max_bytes:,} bytes.",
            code="image_too_large",
        )
    try:
        inspect_image(file)
    except UnreadableImage as exc:
        raise ValidationError(str(exc), code="unreadable_image") from exc
