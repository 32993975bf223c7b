"""Photo signals in scoring: reused photos across sellers and photos too poor to
judge. `photos_check` is the one call the scoring path makes (from
`assessment.content_assess`), with the pictures it already decoded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

import numpy as np
from django.db import connection, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.utils import timezone
from PIL import Image

from clipmatch import conf
from clipmatch.images import decode_image
from clipmatch.inference import photos as core
from clipmatch.inference.scoring import REVIEW, Assessment, worst
from clipmatch.services import ActiveModel, embeddings_images
from listings.models import ImageHash, Listing, ListingImage

# The setting that says whether each finding routes to review or only advises.
ACTION_SETTINGS = {
    core.TOO_SMALL: "PHOTO_TOO_SMALL",
    core.BLURRED: "PHOTO_BLURRED",
    core.TOO_DARK: "PHOTO_TOO_DARK",
    core.TOO_BRIGHT: "PHOTO_TOO_BRIGHT",
    core.NEARLY_BLANK: "PHOTO_NEARLY_BLANK",
}


def quality_limits() -> core.QualityLimits:
    return core.QualityLimits(
        min_side=conf.get("PHOTO_MIN_SIDE"),
        min_sharpness=conf.get("PHOTO_MIN_SHARPNESS"),
        max_dark=conf.get("PHOTO_DARK_BELOW"),
        min_bright=conf.get("PHOTO_BRIGHT_ABOVE"),
        max_blank_contrast=conf.get("PHOTO_BLANK_CONTRAST_BELOW"),
    )


def finding_routes(code: str) -> bool:
    """Whether a quality finding sends the listing to review (else it advises)."""
    return conf.get(ACTION_SETTINGS[code]) == "review"


NO_HASHES = core.PhotoHashes(coarse=[], fine=[])


def photo_signals(picture: Image.Image) -> tuple[core.PhotoHashes, dict]:
    """A decoded picture's hashes (unsigned, CROP_VARIANTS order; none for a flat
    picture, which is nobody's photo) and quality."""
    measures = core.quality_measures(picture)
    quality = {
        "measures": measures.as_dict(),
        "findings": core.quality_findings(measures, quality_limits()),
    }
    if measures.contrast < core.MIN_HASH_CONTRAST:
        return NO_HASHES, quality
    return core.photo_hashes(picture), quality


def image_signals_store(
    *, image: ListingImage, hashes: core.PhotoHashes, quality: dict
) -> None:
    """Write an image's signals; the hash rows replace any it had."""
    with transaction.atomic():
        ImageHash.objects.filter(image=image).delete()
        ImageHash.objects.bulk_create(
            [
                ImageHash(
                    image=image,
                    variant=variant,
                    phash=core.to_signed(value),
                    fine=core.fine_bytes(fine),
                    **{f"band{n}": b for n, b in enumerate(core.bands(value))},
                )
                for variant, (value, fine) in enumerate(
                    zip(hashes.coarse, hashes.fine, strict=True)
                )
            ]
        )
        fields = {
            "phash": core.to_signed(hashes.coarse[0]) if hashes.coarse else None,
            "quality": quality,
            "quality_flags": _flags(quality["findings"]),
            "signals_at": timezone.now(),
        }
        ListingImage.objects.filter(pk=image.pk).update(**fields)
        for name, value in fields.items():
            setattr(image, name, value)


def _flags(findings: Sequence[str]) -> str:
    return f" {' '.join(findings)} " if findings else ""


def _stored_hashes(image_ids: Sequence[int]) -> dict[int, core.PhotoHashes]:
    found: dict[int, dict[int, tuple[int, int | None]]] = {}
    rows = ImageHash.objects.filter(image_id__in=image_ids).values_list(
        "image_id", "variant", "phash", "fine"
    )
    for image_id, variant, value, fine in rows:
        found.setdefault(image_id, {})[variant] = (
            core.to_unsigned(value),
            core.fine_value(fine),
        )
    return {
        image_id: core.PhotoHashes(
            coarse=[variants[n][0] for n in sorted(variants)],
            fine=[variants[n][1] for n in sorted(variants)],
        )
        for image_id, variants in found.items()
    }


def lookup_sql(coarse: list[int], max_distance: int) -> tuple[str, list]:
    """The ids of the rows whose band is within `core.band_radius(max_distance)`
    bits of that band of the new photo's hash (any variant), or within the radius
    of `core.reverse_distance` of one of its crops' hashes (the stored photo's own
    hash, variant 0): one indexed query per band and direction, UNION ALL'd, each
    with its band values as one parameter (an array on PostgreSQL, a JSON list on
    SQLite), so that Django compiles six parameters, not thousands."""
    table = connection.ops.quote_name(ImageHash._meta.db_table)
    if connection.vendor == "postgresql":
        member = "{column} = ANY(ARRAY(SELECT unnest(%s::integer[])))"
    else:
        member = "{column} IN (SELECT value FROM json_each(%s))"
    # The values go as one text parameter either way, an array literal or a JSON
    # list: psycopg adapting a list of 14,000 ints took 7 ms here, the text 1 ms.
    brackets = "{}" if connection.vendor == "postgresql" else "[]"

    def wrap(values: list[int]) -> str:
        return brackets[0] + ",".join(map(str, values)) + brackets[1]

    radius = core.band_radius(max_distance)
    lookups = [("", core.bands_neighbours(coarse[:1], radius))]
    if len(coarse) > 1:
        reverse = core.band_radius(core.reverse_distance(max_distance))
        lookups.append((" AND variant = 0", core.bands_neighbours(coarse[1:], reverse)))
    parts, params = [], []
    for only_photo, per_band in lookups:
        for n, values in enumerate(per_band):
            where = member.format(column=f"band{n}")
            parts.append(f"SELECT id FROM {table} WHERE {where}{only_photo}")
            params.append(wrap(values))
    return " UNION ALL ".join(parts), params


def reuse_eligible(*, seller_id: int, listing_id: int, now: datetime) -> Q:
    """Images on other sellers' listings that are live, or were removed (deleted
    or rejected) within PHOTO_REUSE_RECENT_DAYS; as a filter on ImageHash."""
    since = now - timedelta(days=conf.get("PHOTO_REUSE_RECENT_DAYS"))
    live = Q(image__listing__deleted_at__isnull=True) & ~Q(
        image__listing__status=Listing.Status.REJECTED
    )
    removed = Q(image__listing__deleted_at__gte=since) | Q(
        image__listing__deleted_at__isnull=True,
        image__listing__status=Listing.Status.REJECTED,
        image__listing__updated_at__gte=since,
    )
    return (
        (live | removed)
        & ~Q(image__listing__seller_id=seller_id)
        & ~Q(image__listing_id=listing_id)
    )


def candidate_rows(
    *,
    hashes: core.PhotoHashes,
    seller_id: int,
    listing_id: int,
    now: datetime,
    max_distance: int,
):
    """The hash rows the band lookup returns that may be found: (image id,
    variant, hash, fine hash)."""
    sql, params = lookup_sql(hashes.coarse, max_distance)
    return (
        ImageHash.objects.filter(pk__in=RawSQL(sql, params))
        .filter(reuse_eligible(seller_id=seller_id, listing_id=listing_id, now=now))
        .values_list("image_id", "variant", "phash", "fine")
    )


def reuse_candidates(
    *, hashes: core.PhotoHashes, seller_id: int, listing_id: int, now: datetime
) -> list[tuple[int, int, int | None, core.Pair]]:
    """(image id, distance, fine distance, closest pair) of other sellers' photos
    within the Hamming cut-off.

    The figures are `core.pair_match`'s, from the rows the band lookup returns
    alone: a stored variant within the cut-off (`core.reverse_distance` for a
    stored crop of the new photo) always shares a band within the radius, so the
    rows it does not return are further off.
    """
    max_distance = conf.get("PHOTO_REUSE_MAX_DISTANCE")
    rows = candidate_rows(
        hashes=hashes,
        seller_id=seller_id,
        listing_id=listing_id,
        now=now,
        max_distance=max_distance,
    )
    best: dict[int, core.Match] = {}
    for image_id, variant, value, fine in rows:
        found = core.variant_distances(
            hashes,
            variant,
            core.to_unsigned(value),
            core.fine_value(fine),
            max_distance,
        )
        if found[0] <= max_distance:
            best[image_id] = core.merged(best.get(image_id, core.NO_MATCH), found)
    return sorted((image_id, *match) for image_id, match in best.items())


def reuse_confirmed(distance: int, fine: int | None, cosine: float) -> bool:
    """Whether a near hash is the same photo (`core.reuse_match` with the cut-offs
    in force): the embeddings' cosine or the 256-bit hashes confirm it."""
    return bool(
        core.reuse_match(
            distance,
            fine,
            cosine,
            max_distance=conf.get("PHOTO_REUSE_MAX_DISTANCE"),
            min_cosine=conf.get("PHOTO_REUSE_MIN_COSINE"),
            fine_distance=conf.get("PHOTO_REUSE_FINE_DISTANCE"),
        )
    )


def _read_file(image: ListingImage) -> Image.Image:
    with image.image.open("rb") as fh:
        return decode_image(fh.read()).image


def aligned_cosines(
    *,
    candidates: Sequence[tuple[core.Pair, np.ndarray, ListingImage]],
    vector: np.ndarray,
    picture: Callable[[], Image.Image],
    active: ActiveModel,
) -> list[float | None]:
    """For each (closest pair, embedding, stored image) candidate, the cosine of
    the closest pair's pictures when a crop is in it (`core.crop_variant`): the
    new photo against the stored photo's crop, or the new photo's crop against
    the stored photo; all the crops in one forward. None for two whole photos, or
    when the stored file cannot be read (the whole photos' cosine stands)."""
    crops, against = [], []
    for (new_variant, stored_variant), other, stored in candidates:
        crop = None
        try:
            if stored_variant:
                crop = core.crop_variant(_read_file(stored), stored_variant)
            elif new_variant:
                crop = core.crop_variant(picture(), new_variant)
        except (OSError, ValueError):
            pass
        crops.append(crop)
        against.append(vector if stored_variant else other)
    wanted = [crop.convert("RGB") for crop in crops if crop is not None]
    embedded = iter(active.engine().embed_images(wanted) if wanted else [])
    return [
        None if crop is None else float(np.dot(other, next(embedded)))
        for crop, other in zip(crops, against, strict=True)
    ]


def reuse_find(
    *,
    hashes: core.PhotoHashes,
    vector: np.ndarray,
    picture: Callable[[], Image.Image],
    seller_id: int,
    listing_id: int,
    active: ActiveModel,
    now: datetime,
) -> dict | None:
    """The earliest other seller's photo that is the same photo: near in hash and
    confirmed by the cosine of the cached image embeddings (or of the closest
    crop's: `aligned_cosines`, for the candidates nothing else confirmed) or by
    the 256-bit hashes; None when none is. `picture` decodes the new photo,
    called only if one of its crops is needed."""
    candidates = reuse_candidates(
        hashes=hashes, seller_id=seller_id, listing_id=listing_id, now=now
    )
    if not candidates:
        return None
    distances = {image_id: (d, f, pair) for image_id, d, f, pair in candidates}
    images = list(
        ListingImage.objects.filter(pk__in=distances)
        .select_related("listing")
        .order_by("created_at", "pk")
    )
    vectors = embeddings_images(
        version=active.version,
        images=[(image.content_hash, partial(_read_file, image)) for image in images],
        engine=active.engine,
    )
    cosines = [float(np.dot(vector, other)) for other in vectors]
    unconfirmed = [
        n
        for n, image in enumerate(images)
        if not reuse_confirmed(*distances[image.pk][:2], cosines[n])
    ]
    aligned = aligned_cosines(
        candidates=[
            (distances[images[n].pk][2], vectors[n], images[n]) for n in unconfirmed
        ],
        vector=vector,
        picture=picture,
        active=active,
    )
    for n, cosine in zip(unconfirmed, aligned, strict=True):
        if cosine is not None:
            cosines[n] = max(cosines[n], cosine)
    for image, cosine in zip(images, cosines, strict=True):
        distance, fine, _ = distances[image.pk]
        if reuse_confirmed(distance, fine, cosine):
            return {
                "image_id": image.pk,
                "listing_id": image.listing_id,
                "position": image.position,
                "first_seen": image.created_at.isoformat(),
                "distance": distance,
                "cosine": round(cosine, 4),
            }
    return None


def _day(moment: str) -> str:
    when = timezone.localtime(datetime.fromisoformat(moment))
    if when.year == timezone.localtime().year:
        return f"{when.day} {when:%b}"
    return f"{when.day} {when:%b %Y}"


def reuse_sentence(label: str, reuse: dict) -> str:
    return (
        f"{label} is the same photo as listing #{reuse['listing_id']} by another "
        f"seller (first seen {_day(reuse['first_seen'])})."
    )


def _picture(
    pictures: dict[int, Image.Image],
    index: int,
    data: bytes | None,
    image: ListingImage | None,
    decode: Callable[[int, bytes], Image.Image],
) -> Image.Image:
    """The decoded picture of image `index`: the scorer's, else decoded once
    from its bytes or its file, and kept in `pictures`."""
    if index not in pictures:
        pictures[index] = (
            decode(index + 1, data) if data is not None else _read_file(image)
        )
    return pictures[index]


def photos_check(
    *,
    assessment: Assessment,
    images: Sequence[bytes | None],
    pictures: dict[int, Image.Image],
    vectors: Sequence[np.ndarray],
    active: ActiveModel,
    decode: Callable[[int, bytes], Image.Image],
    listing: Listing | None = None,
    lookup: bool = True,
) -> Assessment:
    """Add the photo signals to an assessment: quality findings for every image
    and, for a stored listing, photos reused from other sellers' listings.

    `pictures` holds the images (by 0-based position) the scorer decoded; an image
    whose embedding was cached is decoded here only if its signals are not stored
    yet or a crop of it confirms a reuse (from its file when `images` holds None
    for it). A stored listing's images get their signals written. Without
    `lookup` (a re-route from cached embeddings) a stored listing keeps the reuse
    finding its images have.
    """
    if not assessment.images:
        return assessment
    stored = list(listing.images.all()) if listing is not None else []
    hashes_of = _stored_hashes([i.pk for i in stored if i.signals_at]) if lookup else {}
    limits = quality_limits()
    now = timezone.now()
    many = len(images) > 1
    reasons, bands, evidence = [], [assessment.verdict], []
    for index, (data, item) in enumerate(zip(images, assessment.images, strict=True)):
        image = stored[index] if stored else None
        label = f"Image {index + 1}" if many else "The image"
        picture = partial(_picture, pictures, index, data, image, decode)
        if image is not None and image.signals_at is not None:
            hashes, quality = hashes_of.get(image.pk, NO_HASHES), image.quality
        else:
            hashes, quality = photo_signals(picture())
            if image is not None:
                image_signals_store(image=image, hashes=hashes, quality=quality)
        # Judged by the limits in force now, from the measures however old.
        measures = core.QualityMeasures(**quality["measures"])
        findings = core.quality_findings(measures, limits)
        for code in findings:
            reasons.append(
                core.finding_sentence(code, label, quality["measures"], limits)
            )
            if finding_routes(code):
                bands.append(REVIEW)
        reuse = None
        if image is not None and not lookup:
            reuse = image.reuse
        elif image is not None and hashes.coarse:
            reuse = reuse_find(
                hashes=hashes,
                vector=vectors[index],
                picture=picture,
                seller_id=listing.seller_id,
                listing_id=listing.pk,
                active=active,
                now=now,
            )
        if image is not None and lookup:
            ListingImage.objects.filter(pk=image.pk).update(
                reused_from_id=reuse["image_id"] if reuse else None, reuse=reuse
            )
        if image is not None and reuse:
            reasons.append(reuse_sentence(label, reuse))
            bands.append(REVIEW)
        evidence.append(replace(item, quality=findings, reuse=reuse))
    return replace(
        assessment,
        verdict=worst(bands),
        reasons=[*assessment.reasons, *reasons],
        images=evidence,
    )


def image_signals_backfill(*, image: ListingImage) -> bool:
    """Compute and store one stored image's hashes and quality from its file.
    False (and nothing written) when the file cannot be read or decoded: its
    listing's scoring reports that already."""
    try:
        picture = _read_file(image)
    except (OSError, ValueError):
        return False
    hashes, quality = photo_signals(picture)
    image_signals_store(image=image, hashes=hashes, quality=quality)
    return True
