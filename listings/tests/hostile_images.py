"""The project's corpus of hostile and odd image files, built in code: truncated and
corrupt files, polyglots, bombs of every mode, animations, 16-bit, CMYK, MPO, odd
EXIF, and what issue 12 found (the 6320x6320 palette and 16-bit bombs, NUL bytes
in names, wrong extensions and types). Each file says how an upload of it must end.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from conftest import mpo_bytes, png_bytes

BOMB_SIDE = 6320  # just under the 40-megapixel cap, as issue 12's attack files
OVER_CAP_SIDE = 6400  # 40,960,000 pixels: over the cap


def _save(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _noise(size=(64, 48)) -> Image.Image:
    """Seeded noise: the same bytes, and so the same decoder messages, every run."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body))
        + kind
        + body
        + struct.pack(">I", zlib.crc32(kind + body))
    )


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size and holds no image data at all."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IEND", b"")


def _png_corrupt_stream() -> bytes:
    data = bytearray(_save(_noise((300, 300)), "PNG"))
    start = data.index(b"IDAT") + 4
    length = int.from_bytes(data[start - 8 : start - 4], "big")
    data[start + length // 2 : start + length] = bytes(length - length // 2)
    return bytes(data)


def _blank(mode: str, fmt: str, side: int = BOMB_SIDE) -> bytes:
    """A few KB that decode to `side` squared pixels of one colour."""
    return _save(Image.new(mode, (side, side)), fmt)


def _gif_animated(frames: int = 300) -> bytes:
    images = []
    for n in range(frames):  # each frame differs, so none is merged away
        image = Image.new("L", (16, 16), 0)
        image.putpixel((n % 16, n // 16 % 16), 255)
        images.append(image)
    return _save(images[0], "GIF", save_all=True, append_images=images[1:])


def _animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:])


def _exif_jpeg(tag_value) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = tag_value  # Orientation
    return _save(_noise(), "JPEG", exif=exif)


def _jpeg_with_garbage_exif() -> bytes:
    """A JPEG whose APP1 says Exif and holds no valid TIFF structure."""
    data = _save(_noise(), "JPEG")
    body = b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + b"\xff" * 64
    app1 = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    return data[:2] + app1 + data[2:]


def _sixteen_bit_small() -> bytes:
    return _save(Image.fromarray(np.full((40, 40), 40000, dtype=np.uint16)), "PNG")


@dataclass(frozen=True)
class Hostile:
    """One file of the corpus, with the name and type an upload gives it."""

    key: str
    filename: str
    content_type: str
    build: Callable[[], bytes]

    @property
    def data(self) -> bytes:
        return _built(self.key)


CORPUS = [
    Hostile("empty", "empty.png", "image/png", lambda: b""),
    Hostile("text-as-gif", "x.gif", "image/gif", lambda: b"GIF89a but just text"),
    Hostile("html-as-jpg", "x.jpg", "image/jpeg", lambda: b"<html><script>1</script>"),
    Hostile(
        "truncated-jpeg",
        "cut.jpg",
        "image/jpeg",
        lambda: _save(_noise((200, 200)), "JPEG")[:1500],
    ),
    Hostile(
        "truncated-png", "cut.png", "image/png", lambda: _save(_noise(), "PNG")[:-12]
    ),
    Hostile("png-corrupt-stream", "corrupt.png", "image/png", _png_corrupt_stream),
    Hostile(
        "png-header-only", "idat.png", "image/png", lambda: _png_header_only(4000, 3000)
    ),
    Hostile(
        "png-html-polyglot",
        "page.png",
        "image/png",
        lambda: png_bytes() + b"<html><script>alert(1)</script></html>",
    ),
    Hostile(
        "png-fake-iend-polyglot",
        "page2.png",
        "image/png",
        lambda: png_bytes() + b"<script>x</script>IEND\0\0\0\0",
    ),
    Hostile(
        "png-zip-polyglot",
        "zip.png",
        "image/png",
        lambda: png_bytes() + b"PK\x03\x04" + bytes(26) + b"PK\x05\x06" + bytes(18),
    ),
    Hostile("bmp", "photo.bmp", "image/bmp", lambda: _save(_noise(), "BMP")),
    Hostile("bmp-named-png", "photo.png", "image/png", lambda: _save(_noise(), "BMP")),
    Hostile(
        "tiff-named-jpg", "photo.jpg", "image/jpeg", lambda: _save(_noise(), "TIFF")
    ),
    Hostile(
        "over-cap-1bit",
        "bomb-1.png",
        "image/png",
        lambda: _blank("1", "PNG", OVER_CAP_SIDE),
    ),
    Hostile(
        "over-cap-gif",
        "bomb.gif",
        "image/gif",
        lambda: _blank("P", "GIF", OVER_CAP_SIDE),
    ),
    # Just under the pixel cap, one per mode a PNG decodes into, a GIF and a JPEG.
    Hostile("bomb-palette", "bomb-p.png", "image/png", lambda: _blank("P", "PNG")),
    Hostile("bomb-16bit", "bomb-16.png", "image/png", lambda: _blank("I;16", "PNG")),
    Hostile("bomb-1bit", "bomb-1.png", "image/png", lambda: _blank("1", "PNG")),
    Hostile("bomb-grey", "bomb-l.png", "image/png", lambda: _blank("L", "PNG")),
    Hostile("bomb-rgb", "bomb-rgb.png", "image/png", lambda: _blank("RGB", "PNG")),
    Hostile("bomb-gif", "bomb.gif", "image/gif", lambda: _blank("P", "GIF")),
    Hostile("bomb-jpeg", "bomb.jpg", "image/jpeg", lambda: _blank("RGB", "JPEG")),
    Hostile("animated-gif-300-frames", "anim.gif", "image/gif", _gif_animated),
    Hostile("animated-png", "anim.png", "image/png", lambda: _animated("PNG")),
    Hostile("animated-webp", "anim.webp", "image/webp", lambda: _animated("WEBP")),
    Hostile("sixteen-bit-grey", "deep.png", "image/png", _sixteen_bit_small),
    Hostile(
        "cmyk-jpeg",
        "cmyk.jpg",
        "image/jpeg",
        lambda: _save(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG"),
    ),
    Hostile("mpo", "stereo.jpg", "image/jpeg", mpo_bytes),
    Hostile("exif-rotated", "turned.jpg", "image/jpeg", lambda: _exif_jpeg(6)),
    Hostile("exif-orientation-9", "odd.jpg", "image/jpeg", lambda: _exif_jpeg(9)),
    Hostile("exif-garbage", "bad-exif.jpg", "image/jpeg", _jpeg_with_garbage_exif),
    Hostile(
        "jpeg-trailing-html",
        "trail.jpg",
        "image/jpeg",
        lambda: _save(_noise(), "JPEG") + b"<html><script>x</script></html>",
    ),
    Hostile(
        "name-with-nul", "photo\x00.php.png", "image/png", lambda: png_bytes(seed=1)
    ),
    Hostile(
        "name-only-controls", "\x00\x01\x1f", "image/png", lambda: png_bytes(seed=2)
    ),
    Hostile(
        "name-path-traversal",
        "../../etc/passwd.png",
        "image/png",
        lambda: png_bytes(seed=3),
    ),
    Hostile(
        "name-very-long", "a" * 400 + ".png", "image/png", lambda: png_bytes(seed=4)
    ),
    Hostile(
        "png-named-jpg-sent-as-html",
        "photo.jpg",
        "text/html",
        lambda: png_bytes(seed=5),
    ),
]
BY_KEY = {entry.key: entry for entry in CORPUS}


@cache
def _built(key: str) -> bytes:
    return BY_KEY[key].build()
