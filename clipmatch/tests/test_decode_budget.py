"""Decoding has a budget: the request only inspects, cheaply and in bounded memory;
the worker decodes, reduced on the way, within CLIPMATCH_MAX_IMAGE_DECODE_BYTES."""

import io
import json
import subprocess
import sys
import time
import zlib

import pytest
from PIL import Image

from clipmatch.images import decode_image, inspect_image
from clipmatch.inference.images import ImageTooLarge, UnreadableImage

SIDE = 6320  # just under the 40-megapixel cap, as the attack files


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def palette_bomb() -> bytes:
    """A few KB of palette PNG that decodes to 40 megapixels."""
    return _png(Image.new("P", (SIDE, SIDE)))


@pytest.fixture(scope="module")
def sixteen_bit_bomb() -> bytes:
    return _png(Image.new("I;16", (SIDE, SIDE)))


def test_the_request_inspects_a_palette_bomb_quickly(palette_bomb):
    started = time.monotonic()
    info = inspect_image(palette_bomb)

    assert time.monotonic() - started < 2
    assert len(palette_bomb) < 100_000
    assert (info.format, info.width, info.height, info.mode) == (
        "PNG",
        SIDE,
        SIDE,
        "P",
    )


def test_the_worker_decodes_a_sixteen_bit_bomb_reduced(sixteen_bit_bomb):
    started = time.monotonic()
    decoded = decode_image(sixteen_bit_bomb)

    assert time.monotonic() - started < 5
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (527, 527)  # reduced by 12, rounding up: >= 512


# The child reads the file and measures its own peak resident memory before and
# after (ru_maxrss, KiB on Linux): a fresh process, so that nothing this test
# process did before hides or inflates the peak. Its cost is CPU seconds, not wall
# time: the bound is on the work a bomb makes, which a busy machine does not change.
MEASURE = """
import json, resource, sys, time
import django
django.setup()
from clipmatch.images import decode_image, inspect_image
path, step = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.process_time()
(inspect_image if step == "inspect" else decode_image)(data)
seconds = time.process_time() - started
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"grown_mb": grown / 1024, "seconds": seconds}))
"""


def measure(path, step) -> dict:
    import os

    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), step],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("bomb", ["palette_bomb", "sixteen_bit_bomb"])
@pytest.mark.parametrize("step", ["inspect", "decode"])
def test_no_process_grows_by_400_mb_for_a_bomb(bomb, step, request, tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(request.getfixturevalue(bomb))

    measured = measure(path, step)

    assert measured["grown_mb"] < 400, measured
    assert measured["seconds"] < (2 if step == "inspect" else 5), measured


def test_a_decode_over_the_memory_budget_is_refused_before_decoding(settings):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "MAX_IMAGE_DECODE_BYTES": 1_000_000}
    data = _png(Image.new("RGB", (600, 600)))

    with pytest.raises(ImageTooLarge) as refused:
        inspect_image(data)

    assert str(refused.value) == (
        "Image too large: decoding 600x600 pixels of mode RGB takes about "
        "1,440,000 bytes of memory, the limit is 1,000,000 bytes."
    )


def test_a_png_with_a_corrupt_stream_is_refused_by_the_cheap_check():
    data = bytearray(_png(Image.effect_noise((300, 300), 60)))
    start = data.index(b"IDAT") + 4
    length = int.from_bytes(data[start - 8 : start - 4], "big")
    data[start + length // 2 : start + length] = bytes(length - length // 2)

    with pytest.raises(UnreadableImage, match="^Unreadable image: "):
        inspect_image(bytes(data))


def test_a_png_whose_stream_stops_short_is_refused_by_the_cheap_check():
    pixels = zlib.compress(bytes(1 + 100 * 3) * 100)[:-20]  # no end of stream
    image = _png(Image.new("RGB", (100, 100)))
    start = image.index(b"IDAT") - 4
    length = int.from_bytes(image[start : start + 4], "big")
    crc = zlib.crc32(b"IDAT" + pixels).to_bytes(4, "big")
    chunk = len(pixels).to_bytes(4, "big") + b"IDAT" + pixels + crc
    data = image[:start] + chunk + image[start + 12 + length :]

    with pytest.raises(UnreadableImage) as refused:
        inspect_image(data)

    assert str(refused.value) == (
        "Unreadable image: the PNG's image data is incomplete."
    )


def test_a_large_jpeg_is_reduced_as_it_decodes():
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000), (20, 140, 220)).save(buffer, format="JPEG")

    decoded = decode_image(buffer.getvalue())

    assert decoded.image.size == (1000, 750)  # DCT scaling by 4: shorter side >= 512
    assert decoded.image.getpixel((10, 10)) == pytest.approx((20, 140, 220), abs=3)
