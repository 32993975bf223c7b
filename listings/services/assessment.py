"""Scoring content with a model: embeddings (cached), similarities and the
verdict. The one scorer behind a stored listing's check and the API's precheck."""

from __future__ import annotations

from functools import partial

from clipmatch.images import decode_image
from clipmatch.inference.images import UnreadableImage, sha256_hex
from clipmatch.inference.scoring import (
    Assessment,
    assess,
    best_chunk_similarity,
    rank_categories,
)
from clipmatch.services import (
    ActiveModel,
    category_vectors,
    embeddings_images,
    embeddings_texts,
    prompt_templates_for,
)
from listings.models import Category, Listing
from listings.services.exceptions import ImageStorageError


def listing_assess(listing: Listing, active: ActiveModel) -> Assessment:
    """Score a stored listing's content as it is now; raises ImageStorageError when
    a file cannot be read, UnreadableImage when one cannot be decoded."""
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
    return content_assess(
        title=listing.title,
        description=listing.description,
        category_name=listing.category.name,
        images=images,
        active=active,
    )


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
    listing costs no second model run.
    """
    texts = [title] + ([description] if description else [])
    # Keyed by the bytes read now, not a stored hash: a file replaced behind the
    # ORM's back can never borrow another image's cached vector.
    engine = active.engine
    keyed = [
        (sha256_hex(data), partial(_decode, number, data, engine))
        for number, data in enumerate(images, start=1)
    ]
    image_vectors = embeddings_images(
        version=active.version, images=keyed, engine=engine
    )
    text_vectors = embeddings_texts(version=active.version, texts=texts, engine=engine)
    names = list(Category.objects.filter(active=True).values_list("name", flat=True))
    if category_name not in names:
        names.append(category_name)
    classes = category_vectors(
        version=active.version,
        names=names,
        templates=prompt_templates_for(active.source),
        engine=engine,
    )
    title_sims, description_sims, rankings = [], [], []
    for vector in image_vectors:
        title_sims.append(best_chunk_similarity(vector, text_vectors[0]))
        description_sims.append(
            best_chunk_similarity(vector, text_vectors[1]) if len(texts) > 1 else None
        )
        rankings.append(rank_categories(vector, names, classes))
    return assess(
        title_sims=title_sims,
        description_sims=description_sims,
        category_rankings=rankings,
        listed_category=category_name,
        thresholds=active.thresholds_for(category_name),
    )


def _decode(number: int, data: bytes, engine):
    # Called only for an image not cached yet, which the model embeds next anyway:
    # decoded no larger than that model needs.
    try:
        return decode_image(data, input_side=engine().input_side).image
    except UnreadableImage as exc:
        raise UnreadableImage(f"Image {number}: {exc}") from exc
