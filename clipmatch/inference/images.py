"""The one place where untrusted image bytes become an RGB picture, or a clear error."""

from __future__ import annotations

import hashlib
import io
import warnings
import zlib
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
# Bytes a decode holds per pixel at its peak, by the mode Pillow decodes into: one
# for the 1-byte modes, four for the rest (Pillow pads 3 bands to 4); a palette is
# expanded to RGBA and 16-bit to 32-bit before it is reduced, beside the original.
DECODE_BYTES_PER_PIXEL = {"1": 2, "L": 1, "P": 5, "I;16": 6, "I;16B": 6, "I;16L": 6}
# GIF and WebP have no cheap partial decode: below this size the request decodes
# them in full to refuse a broken file; above, the worker does.
QUICK_DECODE_PIXELS = 4_000_000


class UnreadableImage(ValueError):
    """The bytes are not an image we accept; the message says why, for a person."""


class ImageTooLarge(UnreadableImage):
    """Over the byte or pixel limit (an API answers 413)."""


class UnsupportedImageType(UnreadableImage):
    """A real image of a type outside the allow-list (an API answers 415)."""


@dataclass(frozen=True)
class ImageInfo:
    """What the cheap checks learnt about an image, without decoding it in full."""

    format: str
    width: int
    height: int
    mode: str
    sha256: str


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


def inspect_image(
    source: bytes | BinaryIO,
    *,
    max_pixels: int,
    max_bytes: int,
    max_decode_bytes: int,
    formats: Sequence[str],
) -> ImageInfo:
    """The checks cheap enough for a web request: size in bytes, format by content,
    declared pixels, the memory a decode would take, and enough of the data to
    refuse a broken file quickly (the PNG's chunks and compressed stream, a JPEG
    decoded at an eighth of its size; small GIFs and WebPs in full). Raises
    UnreadableImage (or a subclass); never holds the full-size pixels."""
    data, fmt = _sniffed(source, max_bytes=max_bytes, formats=formats)
    try:
        with _opened(data, fmt) as opened:
            _check_budget(opened, max_pixels, max_decode_bytes)
            info = ImageInfo(
                fmt, opened.width, opened.height, opened.mode, sha256_hex(data)
            )
            _check_no_trailing_data(fmt, data)
            if fmt == "PNG":
                _check_png_stream(data)
            elif fmt in ("JPEG", "MPO"):
                opened.draft(opened.mode, (1, 1))  # DCT scaling: 1/8 of the pixels
                opened.load()
            elif opened.width * opened.height <= QUICK_DECODE_PIXELS:
                opened.seek(0)
                opened.load()
    except UnreadableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"Image too large: {exc}") from exc
    except Exception as exc:  # any decoder failure is the file's fault, not ours
        raise UnreadableImage(f"Unreadable image: {_describe(exc)}") from exc
    return info


def decode_image(
    source: bytes | BinaryIO,
    *,
    max_pixels: int,
    max_bytes: int,
    formats: Sequence[str],
    max_decode_bytes: int | None = None,
    min_side: int | None = None,
) -> DecodedImage:
    """Decode untrusted image bytes into upright RGB, or raise UnreadableImage.

    With `min_side`, reduced on the way to no less than that on its shorter side
    (a JPEG by DCT scaling as it decodes, the rest by an integer box reduction
    before any conversion); with `max_decode_bytes`, refused before decoding when
    its mode at its size would take more memory than that.
    """
    data, fmt = _sniffed(source, max_bytes=max_bytes, formats=formats)
    try:
        with _opened(data, fmt) as opened:
            opened.seek(0)  # the first frame of an animation or an MPO
            stored_size = opened.size  # before any reduction
            if min_side and fmt in ("JPEG", "MPO"):
                opened.draft(opened.mode, _draft_request(opened.size, min_side))
            _check_budget(opened, max_pixels, max_decode_bytes)
            opened.load()
            _check_no_trailing_data(fmt, data)
            image = _reduced(opened, min_side) if min_side else opened
            turned = image.size
            image = upright_rgb(image)
            # What the photo measures as stored, upright: a reduced copy is not a
            # small photo (the photo quality findings judge size by this).
            width, height = stored_size
            if image.size != turned:
                width, height = height, width
            image.info["source_size"] = (width, height)
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


def _sniffed(
    source: bytes | BinaryIO, *, max_bytes: int, formats: Sequence[str]
) -> tuple[bytes, str]:
    """The bytes and their format, if both are within the limits."""
    allowed = [f.upper() for f in formats]
    data = read_bytes(source)
    if not data:
        raise UnreadableImage("Unreadable image: the file is empty.")
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"Image too large: {len(data):,} bytes, the limit is {max_bytes:,} bytes."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fmt = sniff_format(data)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"Image too large: {exc}") from exc
    if not fmt:
        raise UnreadableImage(
            "Unreadable image: the file is not an image in any format we can read."
        )
    if fmt not in allowed:
        raise UnsupportedImageType(
            f"Unsupported image type {fmt or 'unknown'}: "
            f"accepted types are {', '.join(allowed)}."
        )
    return data, fmt


class _opened:
    """Image.open by only the decoder for `fmt`, with Pillow's bomb warning made an
    error (it only warns below twice its own limit)."""

    def __init__(self, data: bytes, fmt: str):
        self._data, self._fmt = data, fmt

    def __enter__(self) -> Image.Image:
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        opener = OPENED_BY.get(self._fmt, self._fmt)
        self._image = Image.open(io.BytesIO(self._data), formats=[opener])
        return self._image

    def __exit__(self, *exc) -> None:
        self._image.close()
        self._warnings.__exit__(*exc)


def _check_budget(
    opened: Image.Image, max_pixels: int, max_decode_bytes: int | None
) -> None:
    """Refuse by the declared size, before a single pixel is decoded."""
    width, height = opened.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"Image too large: {width}x{height} pixels, the limit is "
            f"{max_pixels:,} pixels."
        )
    if max_decode_bytes is None:
        return
    needed = width * height * DECODE_BYTES_PER_PIXEL.get(opened.mode, 4)
    if needed > max_decode_bytes:
        raise ImageTooLarge(
            f"Image too large: decoding {width}x{height} pixels of mode "
            f"{opened.mode} takes about {needed:,} bytes of memory, the limit is "
            f"{max_decode_bytes:,} bytes."
        )


def _draft_request(size: tuple[int, int], min_side: int) -> tuple[int, int]:
    """The size to ask JPEG's DCT scaling for: it keeps at least this, so the
    shorter side stays at or above `min_side`."""
    width, height = size
    scale = min(1.0, min_side / max(1, min(width, height)))
    return max(1, int(width * scale)), max(1, int(height * scale))


def _reduced(image: Image.Image, min_side: int) -> Image.Image:
    """Box-reduce by the largest whole factor that keeps the shorter side at or
    above `min_side`, in a mode that reduction works in."""
    factor = min(image.size) // min_side
    if factor < 2:
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode in ("PA", "RGBa", "La"):
        image = image.convert("RGBA")
    return image.reduce(factor)


def _check_png_stream(data: bytes) -> None:
    """Inflate the PNG's image data to its end, keeping none of it: a truncated or
    corrupt stream is refused at a fraction of a decode's time and memory."""
    stream = zlib.decompressobj()
    position, finished = len(PNG_SIGNATURE), False
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            chunk = data[position + 8 : position + 8 + length]
            while chunk and not stream.eof:
                stream.decompress(chunk, 1 << 20)
                chunk = stream.unconsumed_tail
        elif kind == b"fdAT":  # an animated PNG's frames: checked by the worker
            pass
        position += 12 + length
        if kind == b"IEND":
            finished = stream.eof
            break
    if not finished:
        raise UnreadableImage("Unreadable image: the PNG's image data is incomplete.")


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


def upright_rgb(image: Image.Image) -> Image.Image:
    """A decoded image turned as its EXIF says and converted to RGB on purpose:
    what the model sees, in the app and in fine-tuning alike."""
    # exif_transpose always returns a new image (a copy when nothing turns): an RGB
    # one is kept as it is, not copied a second time.
    return _to_rgb(ImageOps.exif_transpose(image))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode to RGB on purpose: alpha onto white, 16-bit scaled down.
    An RGB image is returned as it is (the caller's own copy)."""
    mode = image.mode
    if mode == "RGB":
        return image
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
