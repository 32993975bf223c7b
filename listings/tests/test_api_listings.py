"""The listings API: auth, roles, create/list/retrieve/update/delete, errors."""

import io
import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image
from rest_framework.test import APIClient

from conftest import mpo_bytes, png_bytes
from listings.models import Listing, ListingDecision
from listings.services.scoring import listing_score
from listings.tests.factories import CategoryFactory, ListingFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/listings/"


def upload(seed=0, name="photo.png", data=None, content_type="image/png"):
    # A colour per seed: distinct bytes, distinct content hashes.
    if data is None:
        data = png_bytes(colour=(200, (seed * 37) % 256, 30))
    return SimpleUploadedFile(name, data, content_type)


def bmp_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (10, 200, 10)).save(buffer, format="BMP")
    return buffer.getvalue()


@pytest.fixture
def sneaker(db):
    return CategoryFactory(name="sneaker")


def create(client, images, **fields):
    data = {
        "title": "red striped sneaker",
        "description": "A red sneaker with white stripes.",
        "category": "sneaker",
        "price": "49.90",
        "images": images,
        **fields,
    }
    return client.post(URL, data, format="multipart")


def test_no_credentials_is_a_401_in_the_error_shape(sneaker):
    response = APIClient().get(URL)

    assert response.status_code == 401
    assert response.json() == {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided.",
        "fields": {},
    }
    assert response["WWW-Authenticate"] == "Token"


def test_a_user_without_a_role_is_refused_with_403(db):
    from listings.tests.conftest import token_client
    from listings.tests.factories import UserFactory

    response = token_client(UserFactory(username="nobody")).get(URL)

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert response.json()["message"] == (
        "Only sellers and moderators can use the listings API."
    )


def test_a_seller_creates_a_listing_with_two_images_and_scoring_is_queued(
    seller_api, seller, sneaker, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = create(seller_api, [upload(1), upload(2)])

    body = response.json()
    listing = Listing.objects.get()
    assert response.status_code == 201
    assert body["id"] == listing.pk
    assert body["seller"] == "alice"
    assert body["status"] == "pending"
    assert body["score"] is None
    assert [i["position"] for i in body["images"]] == [0, 1]
    assert listing.seller == seller
    assert listing.images.count() == 2
    assert queued == [listing.pk]


def test_missing_fields_are_400_with_every_field_named(seller_api, sneaker):
    response = seller_api.post(URL, {"title": ""}, format="multipart")

    body = response.json()
    assert response.status_code == 400
    assert body["code"] == "invalid"
    assert body["fields"] == {
        "title": ["This field may not be blank."],
        "images": ["This field is required."],
        "category": ["This field is required."],
        "price": ["This field is required."],
    }
    assert body["message"] == "Invalid input: title: This field may not be blank."
    assert Listing.objects.count() == 0


def test_more_images_than_the_limit_is_400(seller_api, sneaker, settings):
    settings.CLIPMATCH_API = {**settings.CLIPMATCH_API, "MAX_IMAGES_PER_LISTING": 2}

    response = create(seller_api, [upload(1), upload(2), upload(3)])

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "images": ["Ensure this field has no more than 2 elements."]
    }
    assert Listing.objects.count() == 0


def test_an_image_over_the_byte_limit_is_413_and_nothing_is_stored(
    seller_api, sneaker, settings
):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "MAX_IMAGE_BYTES": 100}
    tiny = png_bytes(size=(1, 1))
    assert len(tiny) < 100
    data = upload(1).read()

    response = create(seller_api, [upload(0, data=tiny), upload(1)])

    assert response.status_code == 413
    assert response.json() == {
        "code": "image_too_large",
        "message": (
            f"Image 2: Image too large: {len(data):,} bytes, the limit is 100 bytes."
        ),
        "fields": {
            "images": [
                f"Image 2: Image too large: {len(data):,} bytes, "
                "the limit is 100 bytes."
            ]
        },
    }
    assert Listing.objects.count() == 0


def test_an_image_over_the_pixel_limit_is_413(seller_api, sneaker, settings):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "MAX_IMAGE_PIXELS": 100}

    response = create(seller_api, [upload(1)])

    assert response.status_code == 413
    assert response.json()["fields"] == {
        "images": ["Image too large: 48x40 pixels, the limit is 100 pixels."]
    }


def test_a_bmp_named_png_is_415_by_content(seller_api, sneaker):
    response = create(seller_api, [upload(data=bmp_bytes(), name="photo.png")])

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_image_type"
    assert response.json()["fields"] == {
        "images": [
            "Unsupported image type BMP: accepted types are JPEG, MPO, PNG, WEBP, GIF."
        ]
    }


def test_a_file_that_is_not_an_image_is_400(seller_api, sneaker):
    response = create(seller_api, [upload(data=b"<html>hello</html>", name="x.jpg")])

    assert response.status_code == 400
    assert response.json()["code"] == "unreadable_image"
    assert response.json()["fields"] == {
        "images": [
            "Unreadable image: the file is not an image in any format we can read."
        ]
    }


def test_json_on_the_multipart_create_is_415(seller_api, sneaker):
    response = seller_api.post(URL, {"title": "x"}, format="json")

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_a_moderator_cannot_create_listings(moderator_api, sneaker):
    response = create(moderator_api, [upload(1)])

    assert response.status_code == 403
    assert response.json()["message"] == "Only sellers can do this."


def test_setting_the_status_or_an_unknown_field_is_a_400_unknown_field(
    seller_api, seller, sneaker
):
    response = create(seller_api, [upload(1)], status="approved")
    assert (response.status_code, response.json()) == (
        400,
        {
            "code": "unknown_field",
            "message": "Invalid input: status: This field does not exist or "
            "cannot be set.",
            "fields": {"status": ["This field does not exist or cannot be set."]},
        },
    )
    assert not Listing.objects.exists()
    listing_id = create(seller_api, [upload(1)]).json()["id"]

    patched = seller_api.patch(
        f"{URL}{listing_id}/", {"status": "approved", "colour": "red"}, format="json"
    )

    assert patched.status_code == 400
    assert patched.json()["code"] == "unknown_field"
    assert sorted(patched.json()["fields"]) == ["colour", "status"]
    assert Listing.objects.get().status == "pending"


def test_an_unknown_query_parameter_is_a_400_unknown_field(seller_api):
    response = seller_api.get(URL, {"sort": "price", "page_size": 5})
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "sort": ["This query parameter does not exist."]
    }
    assert response.json()["code"] == "unknown_field"
    assert seller_api.get(URL, {"page_size": 5}).status_code == 200


def test_a_seller_lists_only_their_own_and_a_moderator_lists_all(
    seller_api, moderator_api, seller, other_seller, sneaker
):
    mine = ListingFactory(seller=seller)
    theirs = ListingFactory(seller=other_seller)

    seller_ids = [row["id"] for row in seller_api.get(URL).json()["results"]]
    moderator_ids = [row["id"] for row in moderator_api.get(URL).json()["results"]]

    assert seller_ids == [mine.pk]
    assert moderator_ids == [theirs.pk, mine.pk]


def test_list_filters_by_status_band_category_and_updated_since(
    moderator_api, seller, tiny_model, queued
):
    from listings.tests.factories import ListingImageFactory

    scored = ListingImageFactory(listing__seller=seller).listing
    listing_score(listing_id=scored.pk)
    mug = CategoryFactory(name="mug")
    pending_mug = ListingFactory(seller=seller, category=mug)
    Listing.objects.filter(pk=pending_mug.pk).update(
        updated_at=timezone.now() - timedelta(days=2)
    )

    def ids(**params):
        response = moderator_api.get(URL, params)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(status="passed") == [scored.pk]
    assert ids(status="pending") == [pending_mug.pk]
    assert ids(band="pass") == [scored.pk]
    assert ids(band="hold") == []
    assert ids(category="mug") == [pending_mug.pk]
    assert ids(updated_since=since) == [scored.pk]


def test_a_bad_filter_is_400_naming_the_field(moderator_api):
    response = moderator_api.get(URL, {"status": "lost", "updated_since": "soon"})

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "status": ['"lost" is not a valid choice.'],
        "updated_since": [
            "Datetime has wrong format. Use one of these formats instead: "
            "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
        ],
    }


def test_the_list_pages_by_cursor(seller_api, seller, sneaker):
    listings = [ListingFactory(seller=seller) for _ in range(3)]

    first = seller_api.get(URL, {"page_size": 2}).json()
    second = seller_api.get(first["next"]).json()

    assert [r["id"] for r in first["results"]] == [listings[2].pk, listings[1].pk]
    assert [r["id"] for r in second["results"]] == [listings[0].pk]
    assert second["next"] is None


def test_the_list_runs_a_fixed_number_of_queries(
    seller_api, seller, sneaker, django_assert_max_num_queries
):
    from listings.tests.factories import ListingImageFactory

    for _ in range(5):
        ListingImageFactory(listing=ListingFactory(seller=seller))

    # auth, groups, listings with category/seller/score, images, +pagination slack
    with django_assert_max_num_queries(5):
        response = seller_api.get(URL)
    assert len(response.json()["results"]) == 5


def test_retrieve_shows_the_full_score(seller_api, seller, tiny_model, queued):
    from listings.tests.factories import ListingImageFactory

    CategoryFactory(name="mug")
    listing = ListingImageFactory(listing__seller=seller).listing
    listing_score(listing_id=listing.pk)
    listing.refresh_from_db()

    body = seller_api.get(f"{URL}{listing.pk}/").json()

    score = body["score"]
    assert body["status"] == "passed"
    assert score["verdict"] == "pass"
    assert score["reasons"] == ["The image matches the title and description."]
    assert score["model_version"] == {
        "id": listing.score.model_version_id,
        "name": "tiny-clip-0",
        "version": listing.score.model_version.version,
    }
    assert score["similarity"] == pytest.approx(listing.score.similarity)
    assert score["thresholds"] == listing.score.thresholds
    [image] = score["images"]
    assert image["index"] == 1
    assert image["bands"] == {"title": "pass", "description": "pass"}
    assert image["title"] == listing.score.images[0]["title"]
    assert image["listed_rank"] == listing.score.images[0]["listed_rank"]
    assert image["categories"] == listing.score.images[0]["categories"]
    assert {c["category"] for c in image["categories"]} == {"mug", "sneaker"}


def test_another_sellers_listing_is_404_for_read_change_and_delete(
    other_seller_api, seller, sneaker
):
    listing = ListingFactory(seller=seller)
    path = f"{URL}{listing.pk}/"

    responses = [
        other_seller_api.get(path),
        other_seller_api.patch(path, {"title": "mine now"}, format="json"),
        other_seller_api.delete(path),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404]
    assert [r.json() for r in responses] == [
        {"code": "not_found", "message": "Not found.", "fields": {}}
    ] * 3
    listing.refresh_from_db()
    assert listing.title == "red striped sneaker"
    assert listing.deleted_at is None


def test_a_moderator_sees_a_listing_but_cannot_change_or_delete_it(
    moderator_api, seller, sneaker
):
    listing = ListingFactory(seller=seller)
    path = f"{URL}{listing.pk}/"

    assert moderator_api.get(path).status_code == 200
    changed = moderator_api.patch(path, {"title": "x"}, format="json")
    invalid = moderator_api.patch(path, {"title": ""}, format="json")
    deleted = moderator_api.delete(path)

    assert changed.status_code == 403
    assert changed.json()["message"] == "Only the listing's seller can change it."
    assert invalid.status_code == 403
    assert deleted.status_code == 403
    assert deleted.json()["message"] == "Only the listing's seller can delete it."


def test_changing_the_title_sends_a_passed_listing_back_to_pending_and_rescores(
    seller_api, seller, tiny_model, queued, django_capture_on_commit_callbacks
):
    from listings.tests.factories import ListingImageFactory

    listing = ListingImageFactory(listing__seller=seller).listing
    listing_score(listing_id=listing.pk)
    queued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = seller_api.patch(
            f"{URL}{listing.pk}/", {"title": "blue sneaker"}, format="json"
        )

    last = ListingDecision.objects.filter(listing=listing).last()
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    assert response.json()["title"] == "blue sneaker"
    assert response.json()["score"] is None
    assert (last.from_status, last.to_status, last.reason_code) == (
        "passed",
        "pending",
        "content_changed",
    )
    assert queued == [listing.pk]


def test_changing_only_the_price_queues_no_rescore(
    seller_api, seller, tiny_model, queued, django_capture_on_commit_callbacks
):
    from listings.tests.factories import ListingImageFactory

    listing = ListingImageFactory(listing__seller=seller).listing
    listing_score(listing_id=listing.pk)
    queued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = seller_api.patch(
            f"{URL}{listing.pk}/", {"price": "12.00"}, format="json"
        )

    assert response.status_code == 200
    assert response.json()["price"] == "12.00"
    assert response.json()["status"] == "passed"
    assert queued == []


def test_new_images_replace_the_old_ones_and_queue_a_rescore(
    seller_api, seller, sneaker, queued, django_capture_on_commit_callbacks
):
    from listings.tests.factories import ListingImageFactory

    listing = ListingImageFactory(listing__seller=seller).listing
    old_hash = listing.images.get().content_hash

    with django_capture_on_commit_callbacks(execute=True):
        response = seller_api.patch(
            f"{URL}{listing.pk}/",
            {"images": [upload(7), upload(8)]},
            format="multipart",
        )

    hashes = list(listing.images.values_list("content_hash", flat=True))
    assert response.status_code == 200
    assert len(response.json()["images"]) == 2
    assert old_hash not in hashes
    assert len(hashes) == 2
    assert queued == [listing.pk]


def test_delete_hides_the_listing_but_keeps_it_with_an_audit_row(
    seller_api, seller, sneaker
):
    listing = ListingFactory(seller=seller)
    path = f"{URL}{listing.pk}/"

    response = seller_api.delete(path)

    listing.refresh_from_db()
    decision = ListingDecision.objects.get(listing=listing, reason_code="deleted")
    assert response.status_code == 204
    assert seller_api.get(path).status_code == 404
    assert seller_api.get(URL).json()["results"] == []
    assert listing.deleted_at is not None
    assert decision.actor == seller
    assert decision.reason == "Deleted by its seller."
    assert seller_api.delete(path).status_code == 404


def test_a_browser_session_needs_the_csrf_token(seller, sneaker):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(seller)

    refused = client.post(
        URL,
        {
            "title": "t",
            "category": "sneaker",
            "price": "1.00",
            "images": [upload(1)],
        },
        format="multipart",
    )
    page = client.get("/api/v1/listings/", HTTP_ACCEPT="text/html")
    token = page.cookies["csrftoken"].value
    accepted = client.post(
        URL,
        {
            "title": "t",
            "category": "sneaker",
            "price": "1.00",
            "images": [upload(2)],
        },
        format="multipart",
        HTTP_X_CSRFTOKEN=token,
    )

    assert refused.status_code == 403
    assert refused.json()["message"] == "CSRF Failed: CSRF cookie not set."
    assert accepted.status_code == 201


def test_an_unknown_api_path_is_a_json_404_even_for_a_post(seller_api):
    for response in (
        seller_api.get("/api/v1/nothing-here/"),
        seller_api.post("/api/v1/listings/not-a-number/", {}, format="json"),
    ):
        assert response.status_code == 404
        assert response.json() == {
            "code": "not_found",
            "message": "Not found.",
            "fields": {},
        }


def test_a_wait_over_the_limit_is_400_and_creates_nothing(seller_api, sneaker):
    response = seller_api.post(
        f"{URL}?wait=31",
        {
            "title": "t",
            "category": "sneaker",
            "price": "1.00",
            "images": [upload(1)],
        },
        format="multipart",
    )

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "wait": ["Ensure this value is less than or equal to 30."]
    }
    assert Listing.objects.count() == 0


def test_wait_without_a_worker_answers_pending_after_the_wait(seller_api, sneaker):
    import time

    started = time.monotonic()
    response = seller_api.post(
        f"{URL}?wait=1",
        {
            "title": "t",
            "category": "sneaker",
            "price": "1.00",
            "images": [upload(1)],
        },
        format="multipart",
    )

    assert response.status_code == 201
    assert response.json()["status"] == "pending"
    assert response.json()["wait"] == {"seconds": 1, "expired": True}
    assert 1 <= time.monotonic() - started < 3


def test_a_body_over_djangos_limits_is_413_in_the_error_shape(
    seller_api, seller, sneaker, settings
):
    listing = ListingFactory(seller=seller)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2

    big_json = seller_api.patch(
        f"{URL}{listing.pk}/", {"description": "x" * 500}, format="json"
    )
    many_files = create(seller_api, [upload(1), upload(2), upload(3)])

    assert big_json.status_code == 413
    assert big_json.json() == {
        "code": "too_large",
        "message": "Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.",
        "fields": {},
    }
    assert many_files.status_code == 413
    assert many_files.json()["code"] == "too_large"
    listing.refresh_from_db()
    assert listing.description == "A red sneaker with white stripes, barely worn."


def test_the_same_post_with_the_same_idempotency_key_makes_one_listing(
    seller_api, sneaker
):
    def send(title="red striped sneaker", key="abc-123"):
        return seller_api.post(
            URL,
            {
                "title": title,
                "category": "sneaker",
                "price": "49.90",
                "images": [upload(1)],
            },
            format="multipart",
            HTTP_IDEMPOTENCY_KEY=key,
        )

    first, second = send(), send()

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert second["Location"] == first["Location"] == f"{URL}{first.json()['id']}/"
    assert second["Idempotent-Replayed"] == "true"
    assert Listing.objects.count() == 1
    other = send(title="another sneaker")
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    assert send(key="abc-124").status_code == 201
    assert Listing.objects.count() == 2


def test_a_created_listing_says_where_it_is_and_answers_carry_a_request_id(
    seller_api, sneaker
):
    response = create(seller_api, [upload(1)])
    assert response["Location"] == f"{URL}{response.json()['id']}/"
    assert response.json()["wait"] == {"seconds": 0, "expired": False}
    assert len(response["X-Request-Id"]) == 32
    echoed = seller_api.get(URL, HTTP_X_REQUEST_ID="trace-42")
    assert echoed["X-Request-Id"] == "trace-42"
    # The user's throttle, one request spent before this one.
    limit = int(echoed["RateLimit-Limit"])
    assert int(echoed["RateLimit-Remaining"]) == limit - 2
    refused = seller_api.get(URL, HTTP_X_REQUEST_ID="no spaces <b>")
    assert refused["X-Request-Id"] != "no spaces <b>"


def test_categories_lists_the_active_ones_by_slug(seller_api, sneaker):
    from listings.tests.factories import CategoryFactory

    CategoryFactory(name="Retired", slug="retired", active=False)
    assert seller_api.get("/api/v1/categories/").json() == [
        {"slug": "sneaker", "name": sneaker.name}
    ]


def test_a_page_size_over_the_maximum_is_refused_not_capped(seller_api):
    response = seller_api.get(URL, {"page_size": 101})
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "page_size": ["Send a whole number from 1 to 100."]
    }


def test_a_phone_photo_saved_as_mpo_is_accepted_and_scored(
    seller_api, sneaker, tiny_model, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = create(
            seller_api,
            [upload(name="stereo.jpg", data=mpo_bytes(), content_type="image/jpeg")],
        )
    outcome = listing_score(listing_id=response.json()["id"])

    listing = Listing.objects.get()
    assert response.status_code == 201
    assert queued == [listing.pk]
    assert outcome.outcome == "scored"
    assert listing.status == Listing.Status.PASSED
    assert listing.score.images[0]["index"] == 1


def test_a_palette_bomb_is_answered_quickly_and_left_to_the_worker(
    seller_api, sneaker, queued, django_capture_on_commit_callbacks
):
    buffer = io.BytesIO()
    Image.new("P", (6320, 6320)).save(buffer, format="PNG")  # 4.9 KB, 40 megapixels
    started = time.monotonic()

    with django_capture_on_commit_callbacks(execute=True):
        response = create(
            seller_api, [upload(data=buffer.getvalue()) for _ in range(4)]
        )

    assert time.monotonic() - started < 2
    assert response.status_code == 201
    assert queued == [response.json()["id"]]
