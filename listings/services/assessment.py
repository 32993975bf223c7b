"""Scoring content with a model: embeddings (cached), similarities and the
verdict. The one scorer behind a stored listing's check, the API's precheck and
the batches a worker scores at once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import numpy as np
from django.db.models import prefetch_related_objects

from clipmatch.images import decode_image
from clipmatch.inference.images import UnreadableImage, sha256_hex
from clipmatch.inference.scoring import (
    Assessment,
    assess,
    best_chunk_similarity,
    rank_categories,
)
from clipmatch.models import Embedding
from clipmatch.services import (
    ActiveModel,
    category_vectors,
    embeddings_cached,
    embeddings_images_isolated,
    embeddings_texts,
    prompt_templates_for,
    text_hash,
)
from listings.models import Category, Listing, ListingImage
from listings.services.exceptions import ImageStorageError
from listings.services.photos import photos_check


@dataclass(frozen=True)
class Content:
    """What the model looks at in one listing: its texts and its images' bytes."""

    title: str
    description: str
    category_name: str
    images: list[bytes]
    # A stored listing: its images' photo signals are written, and its photos
    # looked up among other sellers' (none for the API's pre-publish check).
    listing: Listing | None = None


def listing_content(listing: Listing) -> Content:
    """A stored listing's content as it is now; raises ImageStorageError when a
    file cannot be read."""
    images = []
    for number, image in enumerate(listing.images.all(), start=1):
        try:
            with image.image.open("rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ImageStorageError(
                f"Image {number}: the file cannot be read ({exc})."
            ) from exc
        images.append(data)
    return Content(
        title=listing.title,
        description=listing.description,
        category_name=listing.category.name,
        images=images,
        listing=listing,
    )


def listing_assess(
    listing: Listing, active: ActiveModel, *, store_signals: bool = True
) -> Assessment:
    """Score a stored listing's content as it is now; raises ImageStorageError when
    a file cannot be read, UnreadableImage when one cannot be decoded. Without
    `store_signals` (a shadow model's look) its images' photo signals are neither
    written nor looked up among other sellers'."""
    content = listing_content(listing)
    if not store_signals:
        content = replace(content, listing=None)
    return _raise_or_return(contents_assess([content], active)[0])


def content_assess(
    *,
    title: str,
    description: str,
    category_name: str,
    images: list[bytes],
    active: ActiveModel,
) -> Assessment:
    """Score images against a title, a description and the categories: the one
    scorer behind both a stored listing's check and the API's pre-publish check.

    Embeddings are cached by content hash, so a checked photo submitted later as a
    listing costs no second model run. The photo signals (quality; reused photos
    for a stored listing) come from the pictures decoded for the model.
    """
    content = Content(title, description, category_name, images)
    return _raise_or_return(contents_assess([content], active)[0])


def _raise_or_return(result: Assessment | UnreadableImage) -> Assessment:
    if isinstance(result, UnreadableImage):
        raise result
    return result


def contents_assess(
    contents: list[Content], active: ActiveModel
) -> list[Assessment | UnreadableImage]:
    """Score several contents with one forward per tower: every image not cached
    yet in one `embed_images` call, every text in one `embed_texts` call (each
    chunked by the batch size).

    Per content, in order, its assessment or the UnreadableImage that stops it: an
    image that cannot be decoded fails only the contents it belongs to. A model
    error raises for all; the caller decides whom to retry.
    """
    # Keyed by the bytes read now, not a stored hash: a file replaced behind the
    # ORM's back can never borrow another image's cached vector.
    keyed = [[(sha256_hex(data), data) for data in c.images] for c in contents]
    engine = active.engine
    decoded = {}  # content hash -> the picture decoded for the model, for the signals
    image_vectors, errors = embeddings_images_isolated(
        version=active.version,
        images=[
            (key, partial(_decode, data, key, decoded, engine))
            for keys in keyed
            for key, data in keys
        ],
        engine=engine,
    )
    texts = list(dict.fromkeys(t for c in contents for t in _texts(c)))
    text_vectors = dict(
        zip(
            texts,
            embeddings_texts(version=active.version, texts=texts, engine=engine),
            strict=True,
        )
    )
    names_of, classes = _categories(active, [c.category_name for c in contents])
    results: list[Assessment | UnreadableImage] = []
    for content, keys, names in zip(contents, keyed, names_of, strict=True):
        broken = next(
            (
                (number, errors[key])
                for number, (key, _) in enumerate(keys, start=1)
                if key in errors
            ),
            None,
        )
        if broken:
            number, exc = broken
            results.append(UnreadableImage(f"Image {number}: {exc}"))
            continue
        vectors = [image_vectors[key] for key, _ in keys]
        assessment = _assess_vectors(
            content.category_name,
            vectors,
            [text_vectors[t] for t in _texts(content)],
            names,
            classes,
            active,
        )
        try:
            results.append(
                photos_check(
                    assessment=assessment,
                    images=content.images,
                    pictures={
                        n: decoded[key]
                        for n, (key, _) in enumerate(keys)
                        if key in decoded
                    },
                    vectors=vectors,
                    active=active,
                    decode=_decode_numbered,
                    listing=content.listing,
                )
            )
        except UnreadableImage as exc:
            results.append(exc)
    return results


def listings_assess_stored(
    listings: list[Listing], active: ActiveModel
) -> dict[int, Assessment | ImageStorageError | UnreadableImage]:
    """Assess stored listings set-wise: from the embedding cache alone where it
    holds all a listing needs, looked up by the content hashes stored with its
    images and texts (the ones its content hash is made of), so that a threshold
    change reads no file and runs no model; the others from their files through
    `contents_assess`, in one batched forward.

    By listing id, its assessment or the error that stops that listing; a model
    error raises.
    """
    image_keys: dict[int, list[str]] = {listing.pk: [] for listing in listings}
    rows = (
        ListingImage.objects.filter(listing_id__in=list(image_keys))
        .order_by("listing_id", "position", "id")
        .values_list("listing_id", "content_hash")
    )
    for listing_id, key in rows:
        image_keys[listing_id].append(key)
    version = active.version
    images = embeddings_cached(
        version=version,
        kind=Embedding.Kind.IMAGE,
        hashes=[key for keys in image_keys.values() for key in keys],
    )
    texts = embeddings_cached(
        version=version,
        kind=Embedding.Kind.TEXT,
        hashes=[text_hash(t) for listing in listings for t in _texts(listing)],
    )
    cached, rest = [], []
    for listing in listings:
        keys = image_keys[listing.pk]
        whole = all(key in images for key in keys) and all(
            text_hash(t) in texts for t in _texts(listing)
        )
        (cached if whole and keys else rest).append(listing)
    results: dict[int, Assessment | ImageStorageError | UnreadableImage] = {}
    names_of, classes = _categories(active, [item.category.name for item in cached])
    # Their photo signals as stored (a threshold change re-routes; it does not
    # look for reused photos again): no file read, no query per listing.
    prefetch_related_objects(cached, "images")
    for listing, names in zip(cached, names_of, strict=True):
        vectors = [images[key][0] for key in image_keys[listing.pk]]
        try:
            results[listing.pk] = photos_check(
                assessment=_assess_vectors(
                    listing.category.name,
                    vectors,
                    [texts[text_hash(t)] for t in _texts(listing)],
                    names,
                    classes,
                    active,
                ),
                images=[None] * len(vectors),
                pictures={},
                vectors=vectors,
                active=active,
                decode=_decode_numbered,
                listing=listing,
                lookup=False,
            )
        except (UnreadableImage, ImageStorageError) as exc:
            results[listing.pk] = exc
        except OSError as exc:  # a file its signals were to come from is gone
            results[listing.pk] = ImageStorageError(f"{exc}")
    contents = {}
    for listing in rest:
        try:
            contents[listing.pk] = listing_content(listing)
        except ImageStorageError as exc:
            results[listing.pk] = exc
    if contents:
        fresh = contents_assess(list(contents.values()), active)
        results.update(zip(contents, fresh, strict=True))
    return results


def _texts(content: Content | Listing) -> list[str]:
    return [content.title] + ([content.description] if content.description else [])


def _categories(
    active: ActiveModel, category_names: list[str]
) -> tuple[list[list[str]], dict[str, np.ndarray]]:
    """Per listed category, the names its images are ranked among, and every such
    name's prompt-ensembled vector (from the cache once embedded)."""
    active_names = list(
        Category.objects.filter(active=True).values_list("name", flat=True)
    )
    names_of = [_names(active_names, name) for name in category_names]
    every_name = list(dict.fromkeys(name for names in names_of for name in names))
    if not every_name:
        return names_of, {}
    vectors = category_vectors(
        version=active.version,
        names=every_name,
        templates=prompt_templates_for(active.source),
        engine=active.engine,
    )
    return names_of, dict(zip(every_name, vectors, strict=True))


def _names(active_names: list[str], category_name: str) -> list[str]:
    """The categories a content's images are ranked among: the active ones and,
    if it is not one of them, its own."""
    if category_name in active_names:
        return active_names
    return [*active_names, category_name]


def _assess_vectors(
    category_name: str,
    image_vectors: list[np.ndarray],
    text_vectors: list[np.ndarray],
    names: list[str],
    classes: dict[str, np.ndarray],
    active: ActiveModel,
) -> Assessment:
    matrix = np.stack([classes[name] for name in names])
    title_sims, description_sims, rankings = [], [], []
    for vector in image_vectors:
        title_sims.append(best_chunk_similarity(vector, text_vectors[0]))
        description_sims.append(
            best_chunk_similarity(vector, text_vectors[1])
            if len(text_vectors) > 1
            else None
        )
        rankings.append(rank_categories(vector, names, matrix))
    return assess(
        title_sims=title_sims,
        description_sims=description_sims,
        category_rankings=rankings,
        listed_category=category_name,
        thresholds=active.thresholds_for(category_name),
    )


def _decode(data: bytes, key: str, decoded: dict, engine):
    # Called only for an image not cached yet, which the model embeds next anyway:
    # decoded no larger than that model needs (and kept for the photo signals).
    picture = decode_image(data, input_side=engine().input_side).image
    decoded[key] = picture
    return picture


def _decode_numbered(number: int, data: bytes):
    try:
        return decode_image(data).image
    except UnreadableImage as exc:
        raise UnreadableImage(f"Image {number}: {exc}") from exc
