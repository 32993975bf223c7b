"""The decoding boundary: every hostile or odd file becomes RGB or a clear error."""

import io

import numpy as np
import pytest
from PIL import Image

from clipmatch.images import decode_image
from clipmatch.inference.images import UnreadableImage
from conftest import mpo_bytes


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def test_a_plain_png_decodes_to_rgb_with_its_hash():
    data = encode(Image.new("RGB", (30, 20), (1, 2, 3)), "PNG")

    decoded = decode_image(data)

    assert (decoded.format, decoded.width, decoded.height) == ("PNG", 30, 20)
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((0, 0)) == (1, 2, 3)
    assert len(decoded.sha256) == 64


def test_a_truncated_jpeg_is_unreadable():
    data = encode(Image.effect_noise((200, 200), 50).convert("RGB"), "JPEG")

    with pytest.raises(UnreadableImage, match="^Unreadable image: "):
        decode_image(data[: len(data) // 2])


def test_a_png_with_html_appended_is_refused():
    data = encode(Image.new("RGB", (8, 8)), "PNG") + b"<html><script>alert(1)</script>"

    with pytest.raises(UnreadableImage, match="data after its end marker"):
        decode_image(data)


def test_text_pretending_to_be_an_image_is_unreadable():
    with pytest.raises(UnreadableImage, match="not an image in any format we can read"):
        decode_image(b"GIF89a but really just text")


def test_an_empty_file_is_unreadable():
    with pytest.raises(UnreadableImage, match="the file is empty"):
        decode_image(b"")


def test_a_format_outside_the_allow_list_is_refused():
    data = encode(Image.new("RGB", (8, 8)), "BMP")

    with pytest.raises(UnreadableImage, match="Unsupported image type BMP"):
        decode_image(data)


def test_too_many_pixels_are_refused_before_decoding(settings):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "MAX_IMAGE_PIXELS": 5_000_000}
    data = encode(Image.new("L", (3000, 2000)), "PNG")

    with pytest.raises(
        UnreadableImage, match="3000x2000 pixels, the limit is 5,000,000"
    ):
        decode_image(data)


def test_pillows_bomb_warning_is_an_error(monkeypatch, settings):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "MAX_IMAGE_PIXELS": 10_000}
    # Pillow warns above MAX_IMAGE_PIXELS and only raises at twice that.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = encode(Image.new("RGB", (40, 40)), "PNG")

    with pytest.raises(UnreadableImage, match="Image too large"):
        decode_image(data)


def test_too_many_bytes_are_refused(settings):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "MAX_IMAGE_BYTES": 100}
    data = encode(Image.effect_noise((64, 64), 60).convert("RGB"), "PNG")

    with pytest.raises(UnreadableImage, match=f"{len(data):,} bytes, the limit is 100"):
        decode_image(data)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(image, "JPEG", exif=exif)

    decoded = decode_image(data)

    assert (decoded.width, decoded.height) == (20, 40)


def test_transparent_pixels_become_white_not_black():
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    decoded = decode_image(encode(image, "PNG"))

    assert decoded.image.getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_transparency_becomes_rgb_on_white():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 255] + [0] * 765)
    decoded = decode_image(encode(image, "PNG", transparency=0))

    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((1, 1)) == (255, 255, 255)


def test_cmyk_jpeg_becomes_rgb():
    image = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red in CMYK
    decoded = decode_image(encode(image, "JPEG"))

    red, green, blue = decoded.image.getpixel((4, 4))
    assert decoded.image.mode == "RGB"
    assert red > 200 and green < 60 and blue < 60


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    array = np.full((4, 4), 32768, dtype=np.uint16)
    image = Image.fromarray(array)
    decoded = decode_image(encode(image, "PNG"))

    assert decoded.image.getpixel((0, 0)) == (128, 128, 128)


def test_an_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])

    decoded = decode_image(buffer.getvalue())

    assert decoded.image.getpixel((2, 2))[0] > 200


def test_a_file_object_is_read_from_its_start():
    buffer = io.BytesIO(encode(Image.new("RGB", (5, 5)), "PNG"))
    buffer.seek(10)

    assert decode_image(buffer).width == 5


def test_appended_data_ending_in_iend_does_not_fool_the_check():
    data = encode(Image.new("RGB", (8, 8)), "PNG") + b"<script>x</script>IEND\0\0\0\0"

    with pytest.raises(UnreadableImage, match="data after its end marker"):
        decode_image(data)


def test_a_png_without_an_end_is_refused():
    data = encode(Image.new("RGB", (8, 8)), "PNG")

    with pytest.raises(UnreadableImage, match="^Unreadable image: "):
        decode_image(data[:-12])


def test_the_upload_validator_refuses_an_oversized_file_before_reading_it(settings):
    from django.core.exceptions import ValidationError
    from django.core.files.uploadedfile import SimpleUploadedFile

    from clipmatch.images import validate_image_file

    settings.CLIPMATCH = {**settings.CLIPMATCH, "MAX_IMAGE_BYTES": 10}
    upload = SimpleUploadedFile("a.png", encode(Image.new("RGB", (8, 8)), "PNG"))

    with pytest.raises(ValidationError, match="the limit is 10 bytes"):
        validate_image_file(upload)


def test_fine_tuning_reads_a_pair_image_as_the_app_decodes_it(tmp_path):
    from clipmatch.inference.pairs import Pair, open_image

    # A JPEG whose EXIF says "rotate 90": phones write these.
    image = Image.new("RGB", (40, 20), (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, 10, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "turned.jpg"
    image.save(path, format="JPEG", exif=exif)
    pair = Pair(row=2, image_path="turned.jpg", path=path, text="a mug", label=1)

    opened = open_image(pair)

    assert opened.size == (20, 40)
    assert opened.tobytes() == decode_image(path.read_bytes()).image.tobytes()


def test_an_mpo_decodes_to_its_first_frame():
    decoded = decode_image(mpo_bytes())

    assert (decoded.format, decoded.width, decoded.height) == ("MPO", 32, 24)
    red, green, blue = decoded.image.getpixel((5, 5))
    assert green > 150 and red < 60 and blue < 60
