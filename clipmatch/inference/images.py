"""The one place where untrusted image bytes become an RGB picture, or a clear error."""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageOps

FORMAT_EXTENSIONS = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "GIF": ".gif",
}
FORMAT_CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Pillow has no MPO opener of its own: its JPEG plugin opens an MPO (and says so in
# `.format`), so `Image.open(formats=["MPO"])` raised KeyError('MPO').
OPENED_BY = {"MPO": "JPEG"}


class UnreadableImage(ValueError):
    """The bytes are not an image we accept; the message says why, for a person."""


class ImageTooLarge(UnreadableImage):
    """Over the byte or pixel limit (an API answers 413)."""


class UnsupportedImageType(UnreadableImage):
    """A real image of a type outside the allow-list (an API answers 415)."""


@dataclass(frozen=True)
class DecodedImage:
    """A fully decoded, upright RGB image and what it was."""

    image: Image.Image
    format: str
    width: int
    height: int
    sha256: str


def read_bytes(source: bytes | BinaryIO) -> bytes:
    """Return the bytes of a file-like object or bytes, from the start."""
    if isinstance(source, bytes | bytearray):
        return bytes(source)
    if hasattr(source, "seek"):
        source.seek(0)
    data = source.read()
    if hasattr(source, "seek"):
        source.seek(0)
    return data


def sha256_hex(data: bytes) -> str:
    """The content hash used for images everywhere."""
    return hashlib.sha256(data).hexdigest()


def decode_image(
    source: bytes | BinaryIO,
    *,
    max_pixels: int,
    max_bytes: int,
    formats: Sequence[str],
) -> DecodedImage:
    """Decode untrusted image bytes completely into RGB, or raise UnreadableImage."""
    allowed = [f.upper() for f in formats]
    data = read_bytes(source)
    if not data:
        raise UnreadableImage("Unreadable image: the file is empty.")
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"Image too large: {len(data):,} bytes, the limit is {max_bytes:,} bytes."
        )
    try:
        # Pillow's own bomb check only warns below twice its limit: make any warning
        # an error, and check the declared size before a single pixel is decoded.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fmt = sniff_format(data)
            if not fmt:
                raise UnreadableImage(
                    "Unreadable image: the file is not an image in any format we "
                    "can read."
                )
            if fmt not in allowed:
                raise UnsupportedImageType(
                    f"Unsupported image type {fmt or 'unknown'}: "
                    f"accepted types are {', '.join(allowed)}."
                )
            # Only the allowed decoders ever see the bytes.
            opener = OPENED_BY.get(fmt, fmt)
            with Image.open(io.BytesIO(data), formats=[opener]) as opened:
                width, height = opened.size
                if width * height > max_pixels:
                    raise ImageTooLarge(
                        f"Image too large: {width}x{height} pixels, the limit is "
                        f"{max_pixels:,} pixels."
                    )
                opened.seek(0)  # the first frame of an animation or an MPO
                opened.load()
                _check_no_trailing_data(fmt, data)
                image = _to_rgb(ImageOps.exif_transpose(opened))
    except UnreadableImage:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"Image too large: {exc}") from exc
    except Image.DecompressionBombWarning as exc:
        raise ImageTooLarge(f"Image too large: {exc}") from exc
    except Exception as exc:  # any decoder failure is the file's fault, not ours
        raise UnreadableImage(f"Unreadable image: {_describe(exc)}") from exc
    return DecodedImage(
        image=image,
        format=fmt,
        width=image.width,
        height=image.height,
        sha256=sha256_hex(data),
    )


def sniff_format(source: bytes | BinaryIO) -> str:
    """The format Pillow identifies from the header, "" when none; decodes nothing."""
    stream = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        with Image.open(stream) as opened:
            return (opened.format or "").upper()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise
    except Exception:  # not an image at all: the caller says so in its own words
        return ""
    finally:
        if hasattr(stream, "seek"):
            stream.seek(0)


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    if isinstance(exc, Image.UnidentifiedImageError):
        return "the file is not an image in any format we can read."
    return text or exc.__class__.__name__


def _check_no_trailing_data(fmt: str, data: bytes) -> None:
    """Refuse PNGs with bytes after the real IEND: a PNG that is also a page."""
    if fmt != "PNG":
        return
    # Walk the chunks from the signature: a search for "IEND" could be fooled by
    # appended data that ends with those four letters.
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        position += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            if position != len(data):
                raise UnreadableImage(
                    "Unreadable image: the PNG has data after its end marker."
                )
            return
    raise UnreadableImage("Unreadable image: the PNG has no end marker.")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode to RGB on purpose: alpha onto white, 16-bit scaled down."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode == "P":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale: scale the full range to 8 bits instead of clipping.
        import numpy as np

        array = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(np.rint(array / peak * 255.0), 0, 255).astype("uint8")
        return Image.fromarray(array, mode="L").convert("RGB")
    if mode == "F":
        import numpy as np

        array = np.asarray(image, dtype=np.float32)
        low, high = float(array.min()), float(array.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        array = ((array - low) * scale).astype("uint8")
        return Image.fromarray(array, mode="L").convert("RGB")
    # CMYK, YCbCr, LAB, L, 1: Pillow's conversions are exact enough for CLIP.
    return image.convert("RGB")
