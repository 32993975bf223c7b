"""Uploaded photos become bytes here, or an error with the right status code."""

from __future__ import annotations

from rest_framework import status

from clipmatch import conf as clip_conf
from clipmatch.images import inspect_image
from clipmatch.inference.images import (
    ImageTooLarge,
    UnreadableImage,
    UnsupportedImageType,
)
from listings.api.errors import FieldError


def read_images(files, *, field: str = "images") -> list[tuple[str, bytes]]:
    """Read and inspect each upload (the cheap checks; the worker decodes): 413
    over the limits, 415 for a type we do not accept (by content, never by name),
    400 for anything else unreadable."""
    max_bytes = clip_conf.get("MAX_IMAGE_BYTES")
    out = []
    many = len(files) > 1
    for number, upload in enumerate(files, start=1):
        label = f"Image {number}: " if many else ""
        if upload.size and upload.size > max_bytes:  # refuse before reading it
            raise FieldError(
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                code="image_too_large",
                fields={
                    field: [
                        f"{label}Image too large: {upload.size:,} bytes, the limit "
                        f"is {max_bytes:,} bytes."
                    ]
                },
            )
        data = upload.read()
        try:
            inspect_image(data)
        except ImageTooLarge as exc:
            raise FieldError(
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                code="image_too_large",
                fields={field: [f"{label}{exc}"]},
            ) from exc
        except UnsupportedImageType as exc:
            raise FieldError(
                status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                code="unsupported_image_type",
                fields={field: [f"{label}{exc}"]},
            ) from exc
        except UnreadableImage as exc:
            raise FieldError(
                status_code=status.HTTP_400_BAD_REQUEST,
                code="unreadable_image",
                fields={field: [f"{label}{exc}"]},
            ) from exc
        out.append((upload.name or f"image{number}", data))
    return out
