"""The photo signals of the inference core: perceptual hash, bands, quality."""

import io
import random

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from clipmatch.inference import photos

LIMITS = photos.QualityLimits(
    min_side=256,
    min_sharpness=1.5,
    max_dark=40.0,
    min_bright=235.0,
    max_blank_contrast=6.0,
)


def catalog_photo(index=0, size=320):
    """A product-like photo: a few coloured shapes on a light gradient."""
    rng = random.Random(index)
    gradient = (
        Image.linear_gradient("L").resize((size, size)).point(lambda v: 170 + v // 4)
    )
    image = Image.merge("RGB", (gradient, gradient, gradient))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = rng.randrange(size // 2), rng.randrange(size // 2)
        w, h = rng.randrange(size // 6, size // 2), rng.randrange(size // 6, size // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x, y, x + w, y + h), fill=colour, outline=(20, 20, 20), width=3)
    return image


def jpeg(image, quality=70):
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def test_a_reencoded_half_size_copy_hashes_within_a_few_bits():
    photo = catalog_photo()
    copy = jpeg(photo.resize((160, 160)))

    assert (
        photos.hamming(photos.perceptual_hash(photo), photos.perceptual_hash(copy)) <= 2
    )


def test_a_cropped_copy_is_near_one_of_the_stored_crops():
    photo = catalog_photo()
    cropped = jpeg(photo.crop((0, 0, 288, 288)))  # 10% off the right and bottom

    whole = photos.hamming(
        photos.perceptual_hash(photo), photos.perceptual_hash(cropped)
    )
    distance = photos.variants_distance(
        photos.hash_variants(cropped), photos.hash_variants(photo)
    )
    assert distance <= 4 < whole


def test_every_hash_has_half_its_bits_set_so_distances_are_even():
    values = [photos.perceptual_hash(catalog_photo(i)) for i in range(5)]

    assert {v.bit_count() for v in values} == {32}
    assert all(photos.hamming(a, values[0]) % 2 == 0 for a in values)


def test_bands_split_the_hash_in_21_21_and_22_bits_and_signed_storage_round_trips():
    value = 0xF10B2EF50AB99878

    assert photos.bands(value) == (0x1E2165, 0x1BD42A, 0x399878)
    assert photos.to_signed(value) < 0
    assert photos.to_unsigned(photos.to_signed(value)) == value
    assert photos.fine_value(photos.fine_bytes(2**255 + 5)) == 2**255 + 5


def test_a_band_search_radius_finds_every_hash_within_the_distance():
    # Two hashes 10 bits apart, 3, 3 and 4 in the three bands: the radius
    # 10 // 3 = 3 reaches the first two bands, not the third.
    a = 0x0123456789ABCDEF
    b = a ^ (0b111 << 50) ^ (0b111 << 30) ^ 0b1111
    radius = photos.band_radius(photos.hamming(a, b))

    assert photos.hamming(a, b) == 10 and radius == 3
    assert len(photos.band_neighbours(0, radius)) == 1562
    assert len(photos.band_neighbours(0, radius, width=22)) == 1794
    found = [
        nb in photos.band_neighbours(na, radius, width=width)
        for na, nb, width in zip(
            photos.bands(a), photos.bands(b), photos.BAND_WIDTHS, strict=True
        )
    ]
    assert found == [True, True, False]
    assert photos.bands_neighbours([a, b], 0) == [
        sorted({photos.bands(a)[n], photos.bands(b)[n]}) for n in range(3)
    ]


def _hashes(coarse, fine):
    return photos.PhotoHashes(coarse=list(coarse), fine=list(fine))


def test_a_new_crop_against_a_stored_photo_counts_only_within_the_reverse_distance():
    # The new photo's whole hash is far from everything stored; its crop 1 is 10
    # bits from the stored photo, then 8.
    stored = _hashes([0x0F0F0F0F0F0F0F0F, 0], [7, 7])
    far = 0xF0F0F0F0F0F0F0F0
    ten = 0x0F0F0F0F0F0F0F0F ^ 0b11111 ^ (0b11111 << 40)
    eight = 0x0F0F0F0F0F0F0F0F ^ 0b1111 ^ (0b1111 << 40)

    assert photos.reverse_distance(10) == 8
    assert photos.pair_distances(_hashes([far, ten], [0, 7]), stored, 10) == (32, None)
    assert photos.pair_distances(_hashes([far, eight], [0, 7]), stored, 10) == (8, 0)


def test_the_fine_distance_is_of_the_pairs_within_the_cut_off_and_none_without():
    stored = _hashes([0, 0xFF], [0b1111, None])
    new = _hashes([0b11], [0])

    # Variant 0 is 2 bits off (fine 4 bits); variant 1 has no fine hash stored.
    assert photos.pair_distances(new, stored, 10) == (2, 4)
    assert photos.pair_distances(new, stored, 0) == (2, None)


def test_the_closest_pair_is_the_fewest_bits_and_on_a_tie_the_first_pair():
    new0 = 0xFFFF000000000000
    stored = _hashes([0x00000000FFFFFFFF, new0 ^ 0b1111, new0 ^ 0b11], [0, 0, 0])

    # Stored crop 2 and the new crop 1 against the stored photo are both 2 bits
    # off: the new photo against a stored crop comes first.
    tie = _hashes([new0, 0x00000000FFFFFFFF ^ 0b11], [0, 0])
    assert photos.pair_match(tie, stored, 10) == (2, 0, (0, 2))
    nearer = _hashes([new0, 0x00000000FFFFFFFF ^ 0b1], [0, 0])
    assert photos.pair_match(nearer, stored, 10) == (1, 0, (1, 0))


def test_a_candidate_is_confirmed_by_the_cosine_or_by_the_fine_hash():
    cutoffs = {"max_distance": 10, "min_cosine": 0.89, "fine_distance": 12}

    assert photos.reuse_match(10, None, 0.89, **cutoffs)
    assert photos.reuse_match(10, 12, 0.2, **cutoffs)
    assert not photos.reuse_match(10, 14, 0.88, **cutoffs)
    assert not photos.reuse_match(12, 0, 1.0, **cutoffs)
    assert photos.reuse_match(
        np.array([2, 2, 12]), np.array([-1, 6, 0]), np.array([0.5, 0.5, 1.0]), **cutoffs
    ).tolist() == [False, True, False]


def test_a_sharp_catalog_photo_or_one_barely_softened_has_no_findings():
    photo = catalog_photo()
    softened = photo.filter(ImageFilter.GaussianBlur(1))

    for image in (photo, softened):
        assert photos.quality_findings(photos.quality_measures(image), LIMITS) == []


def test_small_blurred_dark_bright_and_blank_photos_are_each_found():
    photo = catalog_photo()
    cases = {
        "small": photo.resize((120, 120)),
        "blurred": photo.filter(ImageFilter.GaussianBlur(2)),
        "dark": ImageEnhance.Brightness(photo).enhance(0.15),
        "bright": ImageEnhance.Brightness(photo).enhance(4.0),
        "blank": Image.new("RGB", (400, 300), (128, 128, 128)),
    }

    found = {
        name: photos.quality_findings(photos.quality_measures(image), LIMITS)
        for name, image in cases.items()
    }
    assert found == {
        "small": ["too_small"],
        "blurred": ["blurred"],
        "dark": ["too_dark"],
        "bright": ["too_bright"],
        "blank": ["nearly_blank"],
    }


def test_findings_read_as_sentences_with_their_measure_and_limit():
    measures = photos.quality_measures(Image.new("RGB", (120, 90), (10, 10, 10)))
    codes = photos.quality_findings(measures, LIMITS)

    assert [
        photos.finding_sentence(code, "Image 2", measures.as_dict(), LIMITS)
        for code in codes
    ] == [
        "Image 2 is too small to judge (120×90 pixels; at least 256 on the shorter "
        "side).",
        "Image 2 is too dark (brightness 10 of 255, below 40).",
        "Image 2 is nearly blank (contrast 0.0, below 6.0).",
    ]


def test_a_large_photo_decoded_reduced_for_a_small_model_is_not_too_small():
    from clipmatch.inference.images import decode_image

    buffer = io.BytesIO()
    catalog_photo(3, size=1600).resize((1600, 1200)).save(buffer, "JPEG", quality=90)
    # The way the worker decodes it for a 64-pixel model: reduced to >= 128 px.
    decoded = decode_image(
        buffer.getvalue(),
        max_pixels=40_000_000,
        max_bytes=20_000_000,
        formats=["JPEG"],
        min_side=128,
    ).image

    measures = photos.quality_measures(decoded)

    assert min(decoded.size) < 256  # the copy the model sees is small...
    assert (measures.width, measures.height) == (1600, 1200)  # ...the photo is not
    assert photos.TOO_SMALL not in photos.quality_findings(measures, LIMITS)
