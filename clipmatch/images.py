"""Image decoding as the app does it: the core decoder under the settings' limits."""

from __future__ import annotations

from typing import BinaryIO

from clipmatch import conf
from clipmatch.inference import images as core
from clipmatch.inference.images import DecodedImage, UnreadableImage


def decode_image(source: bytes | BinaryIO) -> DecodedImage:
    """Decode untrusted bytes under CLIPMATCH's size, pixel and format limits."""
    return core.decode_image(
        source,
        max_pixels=conf.get("MAX_IMAGE_PIXELS"),
        max_bytes=conf.get("MAX_IMAGE_BYTES"),
        formats=conf.get("IMAGE_FORMATS"),
    )


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
        decode_image(file)
    except UnreadableImage as exc:
        raise ValidationError(str(exc), code="unreadable_image") from exc
