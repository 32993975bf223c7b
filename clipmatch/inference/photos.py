"""Photo signals from a decoded picture, no Django: a perceptual hash for reused
photos (with the band split its database lookup uses) and quality measures."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import combinations

import numpy as np
from PIL import Image

HASH_BITS = 64
# The hash is split into three bands of 21, 21 and 22 bits (highest first), each
# indexed: two hashes within D bits agree to within D // 3 bits in one band, and a
# band value within 3 bits has 1,562 (21 bits) or 1,794 (22 bits) neighbours, each
# matching about one stored row in two million.
BAND_WIDTHS = (21, 21, 22)
BANDS = len(BAND_WIDTHS)
# The finer hash that confirms a candidate the bands found: 256 of the lowest
# frequencies of the same DCT, each against their median.
FINE_BITS = 256
# pHash: a 32x32 grey copy, its 2-D DCT, and 64 of the lowest frequencies (the
# 8x8 corner without the DC term, which says only how bright, plus the next
# horizontal one) each against their median. Low frequencies survive
# re-encoding, resizing, small crops and brightness changes.
_HASH_SIDE = 32
_HASH_FREQS = 8
_FINE_FREQS = 16
# Quality measures look at a fixed-size grey copy, so that the blur measure of a
# photo does not depend on its resolution.
QUALITY_SIDE = 256

# A picture with less grey spread than this (a flat colour) has no perceptual
# identity: its hash is rounding noise, the same for every flat picture.
MIN_HASH_CONTRAST = 2.0

TOO_SMALL = "too_small"
BLURRED = "blurred"
TOO_DARK = "too_dark"
TOO_BRIGHT = "too_bright"
NEARLY_BLANK = "nearly_blank"
FINDINGS = (TOO_SMALL, BLURRED, TOO_DARK, TOO_BRIGHT, NEARLY_BLANK)
FINDING_LABELS = {
    TOO_SMALL: "too small",
    BLURRED: "blurred",
    TOO_DARK: "too dark",
    TOO_BRIGHT: "too bright",
    NEARLY_BLANK: "nearly blank",
}


@cache
def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: C @ x is the DCT of the column x."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return matrix


def _grey(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    if image.mode != "L":
        image = image.convert("L")
    return np.asarray(image.resize(size, Image.Resampling.BOX), dtype=np.float64)


def _median_bits(freqs: np.ndarray) -> int:
    """Each frequency above the median as a bit, the first the highest."""
    return int.from_bytes(np.packbits(freqs > np.median(freqs)).tobytes(), "big")


def perceptual_hashes(image: Image.Image) -> tuple[int, int]:
    """The 64-bit DCT perceptual hash of a picture and its finer 256-bit one (the
    16x16 lowest frequencies without the DC term, plus the next horizontal one),
    as unsigned ints, from one DCT."""
    pixels = _grey(image, (_HASH_SIDE, _HASH_SIDE))
    dct = _dct_matrix(_HASH_SIDE)
    coefficients = dct @ pixels @ dct.T
    corner = coefficients[:_HASH_FREQS, :_HASH_FREQS].flatten()
    coarse = _median_bits(np.append(corner[1:], coefficients[0, _HASH_FREQS]))
    block = coefficients[:_FINE_FREQS, :_FINE_FREQS].flatten()
    fine = _median_bits(np.append(block[1:], coefficients[0, _FINE_FREQS]))
    return coarse, fine


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit DCT perceptual hash of a picture, as an unsigned int."""
    return perceptual_hashes(image)[0]


# Crops a hash is also taken of, as (kept share of each side, x, y offset share):
# a copy cropped by up to 10% is then near one of them. Variant 0 is the photo.
CROP_VARIANTS = (
    (1.0, 0.5, 0.5),
    *((0.9, x, y) for x in (0.0, 0.5, 1.0) for y in (0.0, 0.5, 1.0)),
    *((0.95, x, y) for x in (0.0, 1.0) for y in (0.0, 1.0)),
)


def _cropped(image: Image.Image, keep: float, x: float, y: float) -> Image.Image:
    if keep >= 1.0:
        return image
    width, height = round(image.width * keep), round(image.height * keep)
    left = round((image.width - width) * x)
    top = round((image.height - height) * y)
    return image.crop((left, top, left + width, top + height))


@dataclass(frozen=True)
class PhotoHashes:
    """A picture's 64-bit hashes (`coarse`, the ones the bands index) and 256-bit
    ones (`fine`, confirmation only), of the photo and its CROP_VARIANTS, in that
    order."""

    coarse: list[int]
    fine: list[int]


def photo_hashes(image: Image.Image) -> PhotoHashes:
    """The hashes of a picture and of its CROP_VARIANTS.

    pHash alone does not survive a 10% crop (half the crops of the synthetic
    catalog differ by more than 12 bits); one of these crops of the original is
    within a few bits of the cropped copy.
    """
    # Grey once, then cropped: the same pixels as each crop made grey (the
    # conversion is per pixel), at a fourteenth of the conversions.
    grey = image if image.mode == "L" else image.convert("L")
    pairs = [perceptual_hashes(_cropped(grey, *crop)) for crop in CROP_VARIANTS]
    return PhotoHashes(coarse=[c for c, _ in pairs], fine=[f for _, f in pairs])


def hash_variants(image: Image.Image) -> list[int]:
    """The 64-bit hashes of a picture and of its CROP_VARIANTS, in that order."""
    return photo_hashes(image).coarse


def variant_pairs(new_count: int, stored_count: int) -> list[tuple[int, int]]:
    """The (new variant, stored variant) pairs two photos are compared on: the new
    photo against each of the stored one's crops, and the new photo's crops against
    the stored photo (so a stored crop of the new photo is found too)."""
    return [(0, j) for j in range(stored_count)] + [(i, 0) for i in range(1, new_count)]


def variants_distance(new: list[int], stored: list[int]) -> int:
    """The fewest bits between two photos' 64-bit hashes over `variant_pairs`."""
    return min(
        hamming(new[i], stored[j]) for i, j in variant_pairs(len(new), len(stored))
    )


def reverse_distance(max_distance: int) -> int:
    """The cut-off for the new photo's crops against a stored photo (a stored crop
    of the new photo), 2 bits tighter than for the new photo against a stored
    one's crops: its lookup probes thirteen hashes' bands, not one, and at 10 bits
    the radius a band drops from 3 (1,562 values) to 2 (232)."""
    return max(0, max_distance - 2)


Pair = tuple[int, int]
# (64-bit distance, 256-bit distance or None, closest pair or None)
Match = tuple[int, int | None, Pair | None]
NO_MATCH: Match = (HASH_BITS, None, None)


def variant_distances(
    new: PhotoHashes, variant: int, coarse: int, fine: int | None, max_distance: int
) -> Match:
    """One stored variant's distances to a new photo, over the `variant_pairs` it
    is in that can count (a pair of a new crop and the stored photo only within
    `reverse_distance`): the fewest bits between the 64-bit hashes (HASH_BITS when
    none counts), the fewest between the 256-bit hashes of the pairs within
    `max_distance` on the 64-bit ones (None when there is none, or the stored fine
    hash is None: not computed yet), and the (new variant, stored variant) pair
    with the fewest 64-bit bits (the first in `variant_pairs` order on a tie; None
    when none counts)."""
    least, finest, pair = HASH_BITS, None, None
    reverse = reverse_distance(max_distance)
    for i in range(len(new.coarse)) if variant == 0 else (0,):
        distance = hamming(new.coarse[i], coarse)
        if i and distance > reverse:
            continue
        if distance < least:
            least, pair = distance, (i, variant)
        if distance <= max_distance and fine is not None:
            bits = hamming(new.fine[i], fine)
            finest = bits if finest is None else min(finest, bits)
    return least, finest, pair


def merged(a: Match, b: Match) -> Match:
    """Two sets of `variant_distances` figures of one stored photo as one: the
    fewer 64-bit bits with their pair (the pair first in `variant_pairs` order,
    which is the pairs' order, on a tie), and the fewer 256-bit bits."""
    (least, finest, pair), (distance, bits, nearest) = a, b
    if nearest is not None and (pair is None or (distance, nearest) < (least, pair)):
        least, pair = distance, nearest
    if bits is not None:
        finest = bits if finest is None else min(finest, bits)
    return least, finest, pair


def pair_match(new: PhotoHashes, stored: PhotoHashes, max_distance: int) -> Match:
    """Two photos' distances as the app judges them: `variant_distances` over the
    stored photo's variants, `merged`. The lookup returns every stored variant
    within `max_distance` (pigeonhole on the bands), so the app gets the same
    figures from the rows it reads."""
    match = NO_MATCH
    for variant, (coarse, fine) in enumerate(
        zip(stored.coarse, stored.fine, strict=True)
    ):
        match = merged(
            match, variant_distances(new, variant, coarse, fine, max_distance)
        )
    return match


def pair_distances(
    new: PhotoHashes, stored: PhotoHashes, max_distance: int
) -> tuple[int, int | None]:
    """`pair_match`'s distances: the fewest 64-bit bits and 256-bit bits."""
    least, finest, _ = pair_match(new, stored, max_distance)
    return least, finest


def crop_variant(picture: Image.Image, variant: int) -> Image.Image:
    """The part of a picture that its CROP_VARIANTS hash `variant` is taken of.

    A candidate whose closest pair (`pair_match`) has a crop in it is confirmed on
    the cosine of that crop's embedding against the other photo's, too: cropping
    10% off moves the bundled model's embedding of the whole photo (0.6 to 0.89
    against the original's, on the synthetic catalog) much more than it moves the
    embedding of the same region."""
    return _cropped(picture, *CROP_VARIANTS[variant])


def reuse_match(
    distance, fine, cosine, *, max_distance: int, min_cosine: float, fine_distance: int
):
    """Whether a candidate is the same photo: within `max_distance` bits on the
    64-bit hash, and confirmed either by the cosine of the image embeddings (the
    better of the two photos' and of the closest pair's: `crop_variant`) or by
    the 256-bit hash (which a brightness change barely moves, where the bundled
    model's embedding does). Works on numbers and on numpy arrays alike (a fine
    distance of -1 or None stands for none)."""
    fine = -1 if fine is None else fine
    confirmed = (np.asarray(cosine) >= min_cosine) | (
        (np.asarray(fine) >= 0) & (np.asarray(fine) <= fine_distance)
    )
    return (np.asarray(distance) <= max_distance) & confirmed


def hamming(a: int, b: int) -> int:
    """Bits in which two unsigned 64-bit hashes differ."""
    return (a ^ b).bit_count()


def to_signed(value: int) -> int:
    """An unsigned 64-bit hash as the signed integer a database BIGINT stores."""
    return value - (1 << HASH_BITS) if value >= 1 << (HASH_BITS - 1) else value


def to_unsigned(value: int) -> int:
    return value & ((1 << HASH_BITS) - 1)


def fine_bytes(value: int) -> bytes:
    """A 256-bit hash as the bytes the database stores."""
    return value.to_bytes(FINE_BITS // 8, "big")


def fine_value(data: bytes | memoryview | None) -> int | None:
    return None if data is None else int.from_bytes(bytes(data), "big")


def _band_shifts() -> tuple[int, ...]:
    shifts, below = [], HASH_BITS
    for width in BAND_WIDTHS:
        below -= width
        shifts.append(below)
    return tuple(shifts)


BAND_SHIFTS = _band_shifts()


def bands(value: int) -> tuple[int, ...]:
    """The hash split into the BAND_WIDTHS integers, highest bits first."""
    return tuple(
        (value >> shift) & ((1 << width) - 1)
        for shift, width in zip(BAND_SHIFTS, BAND_WIDTHS, strict=True)
    )


def band_radius(max_distance: int) -> int:
    """Two hashes within `max_distance` bits agree to within this many bits in at
    least one band (pigeonhole), so a search needs only that radius per band."""
    return max_distance // BANDS


@cache
def _flip_masks(width: int, radius: int) -> np.ndarray:
    masks = [0]
    for flips in range(1, radius + 1):
        for positions in combinations(range(width), flips):
            masks.append(sum(1 << p for p in positions))
    return np.array(masks, dtype=np.int64)


def band_neighbours(band: int, radius: int, width: int = BAND_WIDTHS[0]) -> list[int]:
    """Every value of a `width`-bit band within `radius` bits of `band` (itself
    included, first)."""
    return (_flip_masks(width, radius) ^ band).tolist()


def bands_neighbours(values: list[int], radius: int) -> list[list[int]]:
    """Per band, the sorted distinct band values within `radius` bits of that band
    of any of `values`."""
    found = []
    for n, width in enumerate(BAND_WIDTHS):
        own = np.array([bands(v)[n] for v in values], dtype=np.int64)
        near = (_flip_masks(width, radius)[None, :] ^ own[:, None]).ravel()
        found.append(np.unique(near).tolist())
    return found


@dataclass(frozen=True)
class QualityMeasures:
    """What the quality findings are judged on."""

    width: int
    height: int
    # The variance of the Laplacian of a QUALITY_SIDE grey copy, per 100 of the
    # copy's own variance: a dark or low-contrast photo is not called blurred for
    # having small differences everywhere.
    sharpness: float
    brightness: float  # mean grey level, 0-255
    contrast: float  # standard deviation of the grey levels

    def as_dict(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "sharpness": round(self.sharpness, 2),
            "brightness": round(self.brightness, 1),
            "contrast": round(self.contrast, 1),
        }


def quality_measures(image: Image.Image) -> QualityMeasures:
    """Size, sharpness, brightness and contrast of a decoded picture."""
    grey = _grey(image, (QUALITY_SIDE, QUALITY_SIDE))
    laplacian = (
        grey[:-2, 1:-1]
        + grey[2:, 1:-1]
        + grey[1:-1, :-2]
        + grey[1:-1, 2:]
        - 4 * grey[1:-1, 1:-1]
    )
    variance = float(grey.var())
    # A picture decoded reduced (clipmatch.inference.images.decode_image) carries
    # the size it has as stored.
    width, height = image.info.get("source_size", image.size)
    return QualityMeasures(
        width=width,
        height=height,
        sharpness=100 * float(laplacian.var()) / variance if variance else 0.0,
        brightness=float(grey.mean()),
        contrast=float(grey.std()),
    )


@dataclass(frozen=True)
class QualityLimits:
    """Where each finding starts."""

    min_side: int
    min_sharpness: float
    max_dark: float
    min_bright: float
    max_blank_contrast: float


def quality_findings(measures: QualityMeasures, limits: QualityLimits) -> list[str]:
    """The findings (codes of FINDINGS, in that order) a picture's measures give.

    A nearly blank picture has no edges to be sharp with: it is reported blank,
    not also blurred.
    """
    found = []
    if min(measures.width, measures.height) < limits.min_side:
        found.append(TOO_SMALL)
    blank = measures.contrast < limits.max_blank_contrast
    if not blank and measures.sharpness < limits.min_sharpness:
        found.append(BLURRED)
    if measures.brightness < limits.max_dark:
        found.append(TOO_DARK)
    if measures.brightness > limits.min_bright:
        found.append(TOO_BRIGHT)
    if blank:
        found.append(NEARLY_BLANK)
    return found


def finding_sentence(
    code: str, label: str, measures: dict, limits: QualityLimits
) -> str:
    """A finding in words for the seller and the moderator."""
    if code == TOO_SMALL:
        return (
            f"{label} is too small to judge ({measures['width']}×{measures['height']} "
            f"pixels; at least {limits.min_side} on the shorter side)."
        )
    if code == BLURRED:
        return (
            f"{label} looks blurred (sharpness {measures['sharpness']:.2f}, "
            f"below {limits.min_sharpness:.2f})."
        )
    if code == TOO_DARK:
        return (
            f"{label} is too dark (brightness {measures['brightness']:.0f} of 255, "
            f"below {limits.max_dark:.0f})."
        )
    if code == TOO_BRIGHT:
        return (
            f"{label} is too bright (brightness {measures['brightness']:.0f} of 255, "
            f"above {limits.min_bright:.0f})."
        )
    if code == NEARLY_BLANK:
        return (
            f"{label} is nearly blank (contrast {measures['contrast']:.1f}, "
            f"below {limits.max_blank_contrast:.1f})."
        )
    raise ValueError(f"unknown photo finding {code!r}")
