"""The hostile-image corpus through every entry point: the listings API, the check
endpoint, the admin's add form and the worker's scoring task. No file gives a
server error, and no listing holding one ends passed or stays pending."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from listings.models import Category, Listing, ListingImage
from listings.tasks import score_listing
from listings.tests.conftest import admin_add_listing_data
from listings.tests.factories import CategoryFactory, ListingFactory
from listings.tests.hostile_images import CORPUS

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

TITLE = "red striped sneaker"
DESCRIPTION = "A red sneaker with white stripes, lace-up, cushioned sole."


@dataclass(frozen=True)
class Refused:
    """An upload refused with this HTTP status and message."""

    status: int
    message: str


@dataclass(frozen=True)
class Expected:
    """How one file ends by each entry point: the API's create and the check
    endpoint (refused, or the status or verdict it is scored to), the admin's add
    form (the form error it shows, or the status its listing is scored to), and
    the worker scoring a listing that holds it (stored past every upload check,
    by the ORM or a shell): the status and the scoring error."""

    api: Refused | str
    check: Refused | str
    admin: str
    worker: tuple[str, str]


def refused(status, message, *, admin="", worker=""):
    """Refused at every upload, in the same words unless Django's image field
    words it first in the admin, or the worker's full decode words it otherwise."""
    return Expected(
        Refused(status, message),
        Refused(status, message),
        admin or message,
        ("review", f"Scoring failed: Image 1: {worker or message}"),
    )


def scored(status, *, admin=""):
    """Accepted everywhere (unless the admin refuses it with `admin`) and routed to
    `status` by the bundled model, never passed."""
    return Expected(status, VERDICT[status], admin or status, (status, ""))


VERDICT = {"held": "hold", "review": "review"}
EMPTY = "Unreadable image: the file is empty."
NOT_AN_IMAGE = "Unreadable image: the file is not an image in any format we can read."
TRAILING = "Unreadable image: the PNG has data after its end marker."
INCOMPLETE = "Unreadable image: the PNG's image data is incomplete."
TRUNCATED = "Unreadable image: image file is truncated (107 bytes not processed)"
UNSUPPORTED = "Unsupported image type {}: accepted types are JPEG, MPO, PNG, WEBP, GIF."
OVER_CAP = "Image too large: 6400x6400 pixels, the limit is 40,000,000 pixels."
# Django's image field checks with Pillow before the project's validator runs.
DJANGO_EMPTY = "The submitted file is empty."
DJANGO_INVALID = (
    "Upload a valid image. The file you uploaded was either not an image or a "
    "corrupted image."
)

OUTCOMES = {
    "empty": refused(400, EMPTY, admin=DJANGO_EMPTY),
    "text-as-gif": refused(400, NOT_AN_IMAGE, admin=DJANGO_INVALID),
    "html-as-jpg": refused(400, NOT_AN_IMAGE, admin=DJANGO_INVALID),
    "truncated-jpeg": refused(400, TRUNCATED),
    "truncated-png": refused(
        400, "Unreadable image: the PNG has no end marker.", admin=DJANGO_INVALID
    ),
    "png-corrupt-stream": refused(
        400,
        "Unreadable image: Error -3 while decompressing data: "
        "invalid stored block lengths",
        admin=DJANGO_INVALID,
        worker="Unreadable image: broken data stream when reading image file",
    ),
    "png-header-only": refused(
        400,
        INCOMPLETE,
        admin=DJANGO_INVALID,
        worker="Unreadable image: cannot load this image",
    ),
    "png-html-polyglot": refused(400, TRAILING),
    "png-fake-iend-polyglot": refused(400, TRAILING),
    "png-zip-polyglot": refused(400, TRAILING),
    "bmp": refused(415, UNSUPPORTED.format("BMP")),
    "bmp-named-png": refused(415, UNSUPPORTED.format("BMP")),
    "tiff-named-jpg": refused(415, UNSUPPORTED.format("TIFF")),
    "over-cap-1bit": refused(413, OVER_CAP),
    "over-cap-gif": refused(413, OVER_CAP),
    "bomb-palette": scored("held"),
    "bomb-16bit": scored("held"),
    "bomb-1bit": scored("held"),
    "bomb-grey": scored("held"),
    "bomb-rgb": scored("held"),
    "bomb-gif": scored("held"),
    "bomb-jpeg": scored("held"),
    "animated-gif-300-frames": scored("held"),
    "animated-png": scored("held"),
    "animated-webp": scored("held"),
    "sixteen-bit-grey": scored("held"),
    "cmyk-jpeg": scored("held"),
    "mpo": scored("held"),
    "exif-rotated": scored("held"),
    "exif-orientation-9": scored("held"),
    "exif-garbage": scored("held"),
    "jpeg-trailing-html": scored("held"),
    "name-with-nul": scored("held"),
    # Django's upload parser drops a file whose name sanitises to nothing: the API
    # has no image, and the admin a listing without one, which goes to a person.
    "name-only-controls": Expected(
        Refused(400, "This field is required."),
        Refused(400, "No file was submitted."),
        "review",
        ("held", ""),
    ),
    "name-path-traversal": scored("held"),
    # Django keeps 255 characters of a name; the image field allows 100.
    "name-very-long": scored(
        "held", admin="Ensure this filename has at most 100 characters (it has 255)."
    ),
    "png-named-jpg-sent-as-html": scored("held"),
}


@pytest.fixture
def world(db, use_model, bundled_model_dir, seller_api, seller, queued, client):
    """The bundled model with its own thresholds, its categories, a seller's API
    client and a superuser's admin session."""
    use_model(bundled_model_dir)
    for name in ("sneaker", "handbag", "mug", "lamp"):
        CategoryFactory(name=name)
    admin = get_user_model().objects.create_superuser("boss", "b@example.com", "pw")
    client.force_login(admin)
    return {"api": seller_api, "admin": client, "seller": seller}


def _upload(entry) -> SimpleUploadedFile:
    return SimpleUploadedFile(entry.filename, entry.data, entry.content_type)


def _scored(listing_id: int) -> Listing:
    """Run the real scoring task, as a worker does, and return the routed listing."""
    score_listing(listing_id)
    return Listing.objects.get(pk=listing_id)


def _refusal(response, field: str) -> Refused:
    assert response.status_code < 500, response.content
    messages = response.json()["fields"][field]
    assert len(messages) == 1, messages
    return Refused(response.status_code, messages[0])


def _through_api(world, entry, capture_on_commit) -> Refused | str:
    with capture_on_commit(execute=True):
        response = world["api"].post(
            "/api/v1/listings/",
            {
                "title": TITLE,
                "description": DESCRIPTION,
                "category": "sneaker",
                "price": "49.90",
                "images": [_upload(entry)],
            },
            format="multipart",
        )
    if response.status_code != 201:
        return _refusal(response, "images")
    return _scored(response.json()["id"]).status


def _through_check(world, entry) -> Refused | str:
    response = world["api"].post(
        "/api/v1/check/",
        {
            "title": TITLE,
            "description": DESCRIPTION,
            "category": "sneaker",
            "image": _upload(entry),
        },
        format="multipart",
    )
    if response.status_code != 200:
        return _refusal(response, "image")
    return response.json()["verdict"]


def _through_admin(world, entry, capture_on_commit) -> str:
    """The form error the admin shows, or the status its new listing is scored to."""
    title = f"{TITLE} (admin)"
    data = admin_add_listing_data(
        seller=world["seller"],
        category=Category.objects.get(name="sneaker"),
        upload=_upload(entry),
        title=title,
    )
    with capture_on_commit(execute=True):
        response = world["admin"].post(reverse("admin:listings_listing_add"), data)
    created = Listing.objects.filter(title=title).first()
    if response.status_code == 200:
        errors = [str(e) for errors in response.context["errors"] for e in errors]
        assert created is None
        return " ".join(errors)
    assert response.status_code == 302, response.content
    return _scored(created.pk).status


def _through_worker(entry, seller) -> tuple[str, str]:
    """The file stored by the ORM, past every upload check, then scored."""
    listing = ListingFactory(
        seller=seller,
        title=TITLE,
        description=DESCRIPTION,
        category=Category.objects.get(name="sneaker"),
    )
    ListingImage.objects.create(
        listing=listing, image=ContentFile(entry.data, name="stored.bin")
    )
    scored = _scored(listing.pk)
    return scored.status, scored.scoring_error


@pytest.mark.parametrize("entry", CORPUS, ids=[entry.key for entry in CORPUS])
def test_a_hostile_file_never_errors_and_never_passes_by_any_entry_point(
    world, entry, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks

    seen = Expected(
        api=_through_api(world, entry, capture),
        check=_through_check(world, entry),
        admin=_through_admin(world, entry, capture),
        worker=_through_worker(entry, world["seller"]),
    )

    assert seen == OUTCOMES[entry.key]
    assert not Listing.objects.filter(
        status__in=[Listing.Status.PASSED, Listing.Status.PENDING]
    ).exists()


def test_the_outcome_table_covers_the_whole_corpus():
    assert sorted(OUTCOMES) == sorted(entry.key for entry in CORPUS)
