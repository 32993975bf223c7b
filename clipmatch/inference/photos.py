"""Photo signals from a decoded picture, no Django: a perceptual hash for reused
photos (with the band split its database lookup uses) and quality measures."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import combinations

import numpy as np
from PIL import Image

HASH_BITS = 64
BANDS = 4
BAND_BITS = HASH_BITS // BANDS
BAND_MASK = (1 << BAND_BITS) - 1
# pHash: a 32x32 grey copy, its 2-D DCT, and 64 of the lowest frequencies (the
# 8x8 corner without the DC term, which says only how bright, plus the next
# horizontal one) each against their median. Low frequencies survive
# re-encoding, resizing, small crops and brightness changes.
_HASH_SIDE = 32
_HASH_FREQS = 8
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
    grey = image.convert("L").resize(size, Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.float64)


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit DCT perceptual hash of a picture, as an unsigned int."""
    pixels = _grey(image, (_HASH_SIDE, _HASH_SIDE))
    dct = _dct_matrix(_HASH_SIDE)
    coefficients = dct @ pixels @ dct.T
    corner = coefficients[:_HASH_FREQS, :_HASH_FREQS].flatten()
    freqs = np.append(corner[1:], coefficients[0, _HASH_FREQS])
    bits = freqs > np.median(freqs)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


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


def hash_variants(image: Image.Image) -> list[int]:
    """The perceptual hashes of a picture and of its CROP_VARIANTS, in that order.

    pHash alone does not survive a 10% crop (half the crops of the synthetic
    catalog differ by more than 12 bits); one of these crops of the original is
    within a few bits of the cropped copy.
    """
    return [perceptual_hash(_cropped(image, *crop)) for crop in CROP_VARIANTS]


def variants_distance(new: list[int], stored: list[int]) -> int:
    """The fewest bits between two photos' hashes, as the lookup compares them: the
    new photo against each of the stored one's crops, and the new photo's crops
    against the stored photo (so a stored crop of the new photo is found too)."""
    whole = min(hamming(new[0], h) for h in stored)
    return min(whole, *(hamming(h, stored[0]) for h in new[1:]))


def hamming(a: int, b: int) -> int:
    """Bits in which two unsigned 64-bit hashes differ."""
    return (a ^ b).bit_count()


def to_signed(value: int) -> int:
    """An unsigned 64-bit hash as the signed integer a database BIGINT stores."""
    return value - (1 << HASH_BITS) if value >= 1 << (HASH_BITS - 1) else value


def to_unsigned(value: int) -> int:
    return value & ((1 << HASH_BITS) - 1)


def bands(value: int) -> tuple[int, ...]:
    """The hash split into BANDS integers of BAND_BITS bits, highest first."""
    return tuple(
        (value >> (BAND_BITS * (BANDS - 1 - n))) & BAND_MASK for n in range(BANDS)
    )


def band_radius(max_distance: int) -> int:
    """Two hashes within `max_distance` bits agree to within this many bits in at
    least one band (pigeonhole), so a search needs only that radius per band."""
    return max_distance // BANDS


@cache
def _flip_masks(radius: int) -> tuple[int, ...]:
    masks = [0]
    for flips in range(1, radius + 1):
        for positions in combinations(range(BAND_BITS), flips):
            masks.append(sum(1 << p for p in positions))
    return tuple(masks)


def band_neighbours(band: int, radius: int) -> list[int]:
    """Every band value within `radius` bits of `band` (itself included)."""
    return [band ^ mask for mask in _flip_masks(radius)]


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
