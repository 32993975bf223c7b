"""Reused photos across sellers and photo quality, through every way in."""

import io
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image, ImageEnhance, ImageFilter

from listings.models import ImageHash, Listing, ListingImage
from listings.services.scoring import listing_request_scoring, listing_score
from listings.tests.factories import CategoryFactory, ListingFactory
from training.catalog import HELDOUT_SEED, generate_item

pytestmark = pytest.mark.django_db
Status = Listing.Status


def catalog_png(index: int, size: int = 320) -> bytes:
    buffer = io.BytesIO()
    generate_item(index, seed=HELDOUT_SEED, size=size).image.save(buffer, "PNG")
    return buffer.getvalue()


def stolen_copy(data: bytes) -> bytes:
    """What a thief uploads: the photo cropped a little, brighter, as a JPEG."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image = image.crop((10, 12, image.width - 6, image.height - 4))
    image = ImageEnhance.Brightness(image).enhance(1.1)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def scored(listing: Listing) -> Listing:
    listing_request_scoring(listing_id=listing.pk)
    listing_score(listing_id=listing.pk)
    listing.refresh_from_db()
    return listing


def orm_listing(seller, photos: list[bytes], **fields) -> Listing:
    listing = ListingFactory(seller=seller, **fields)
    for position, data in enumerate(photos):
        ListingImage.objects.create(
            listing=listing,
            image=ContentFile(data, name=f"photo{position}.png"),
            position=position,
        )
    return listing


@pytest.fixture
def original(tiny_model, queued, seller):
    """Alice's live listing with her own photo, scored."""
    return scored(orm_listing(seller, [catalog_png(0)]))


def reuse_reason(listing: Listing) -> list[str]:
    return [r for r in listing.score.reasons if "same photo" in r]


def first_seen(listing: Listing) -> str:
    created = timezone.localtime(listing.images.get().created_at)
    return f"{created.day} {created:%b}"


def test_a_stolen_photo_saved_through_the_orm_goes_to_review_naming_the_listing(
    original, other_seller
):
    thief = scored(
        orm_listing(other_seller, [catalog_png(5), stolen_copy(catalog_png(0))])
    )

    assert thief.status == Status.REVIEW
    assert reuse_reason(thief) == [
        f"Image 2 is the same photo as listing #{original.pk} by another seller "
        f"(first seen {first_seen(original)})."
    ]
    image = thief.images.get(position=1)
    assert image.reused_from == original.images.get()
    assert image.reuse["listing_id"] == original.pk
    evidence = thief.score.images
    assert [row["reuse"] is not None for row in evidence] == [False, True]
    assert evidence[1]["reuse"]["listing_id"] == original.pk


def test_the_sellers_own_photo_on_a_second_listing_is_not_a_finding(original, seller):
    again = scored(orm_listing(seller, [stolen_copy(catalog_png(0))]))

    assert again.status == Status.PASSED
    assert reuse_reason(again) == []
    assert again.images.get().reused_from is None


def test_a_different_photo_of_the_same_kind_is_not_a_reuse(original, other_seller):
    other = scored(orm_listing(other_seller, [catalog_png(1)]))

    assert other.status == Status.PASSED
    assert reuse_reason(other) == []


def test_a_photo_of_a_listing_deleted_long_ago_is_not_a_reuse_but_a_recent_one_is(
    original, other_seller, settings
):
    Listing.objects.filter(pk=original.pk).update(
        deleted_at=timezone.now() - timedelta(days=100)
    )
    old = scored(orm_listing(other_seller, [stolen_copy(catalog_png(0))]))
    settings.CLIPMATCH = {**settings.CLIPMATCH, "PHOTO_REUSE_RECENT_DAYS": 120}
    recent = scored(orm_listing(other_seller, [stolen_copy(catalog_png(0))]))

    assert (old.status, reuse_reason(old)) == (Status.PASSED, [])
    assert recent.status == Status.REVIEW
    assert f"listing #{original.pk} " in reuse_reason(recent)[0]


def test_a_stolen_photo_sent_through_the_api_is_caught_and_shown_in_its_score(
    original, other_seller_api, django_capture_on_commit_callbacks
):
    CategoryFactory(name="sneaker")
    with django_capture_on_commit_callbacks(execute=True):
        response = other_seller_api.post(
            "/api/v1/listings/",
            {
                "title": "red striped sneaker",
                "description": "A red sneaker.",
                "category": "sneaker",
                "price": "20",
                "images": [
                    SimpleUploadedFile(
                        "mine.jpg", stolen_copy(catalog_png(0)), "image/jpeg"
                    )
                ],
            },
            format="multipart",
        )
    listing_score(listing_id=response.json()["id"])

    body = other_seller_api.get(f"/api/v1/listings/{response.json()['id']}/").json()
    assert body["status"] == "review"
    assert (
        f"The image is the same photo as listing #{original.pk} by another seller "
        f"(first seen {first_seen(original)})." in body["score"]["reasons"]
    )
    reuse = body["score"]["images"][0]["reuse"]
    assert (reuse["listing_id"], reuse["position"]) == (original.pk, 0)
    assert body["score"]["images"][0]["quality"] == []


def test_a_stolen_photo_added_in_the_admin_is_caught(original, other_seller, client):
    admin = get_user_model().objects.create_superuser("boss", "b@example.com", "pw")
    client.force_login(admin)
    response = client.post(
        reverse("admin:listings_listing_add"),
        {
            "seller": other_seller.pk,
            "title": "red striped sneaker",
            "description": "",
            "price": "3",
            "category": original.category.pk,
            "images-TOTAL_FORMS": "1",
            "images-INITIAL_FORMS": "0",
            "images-0-image": SimpleUploadedFile(
                "x.jpg", stolen_copy(catalog_png(0)), "image/jpeg"
            ),
            "images-0-position": "0",
            "decisions-TOTAL_FORMS": "0",
            "decisions-INITIAL_FORMS": "0",
            "scoring_attempts-TOTAL_FORMS": "0",
            "scoring_attempts-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    listing = Listing.objects.get(seller=other_seller)
    listing_score(listing_id=listing.pk)
    listing.refresh_from_db()

    assert listing.status == Status.REVIEW
    assert f"listing #{original.pk} by another seller" in reuse_reason(listing)[0]
    filtered = client.get(
        reverse("admin:listings_listing_changelist") + "?photo_reused=yes"
    )
    assert [row.pk for row in filtered.context["cl"].result_list] == [listing.pk]
    page = client.get(reverse("admin:listings_listing_change", args=[listing.pk]))
    assert f"same photo as listing #{original.pk}" in page.content.decode()


def test_the_review_page_shows_both_photos_with_a_link_for_moderators(
    original, other_seller, moderator
):
    thief = scored(orm_listing(other_seller, [stolen_copy(catalog_png(0))]))
    client = Client()
    client.force_login(moderator)

    page = client.get(reverse("review:item", args=[thief.pk])).content.decode()

    other_image = original.images.get()
    assert f"The same photo as listing #{original.pk} by another seller" in page
    assert reverse("review:image", args=[other_image.pk]) in page
    assert reverse("review:image", args=[thief.images.get().pk]) in page
    assert reverse("admin:listings_listing_change", args=[original.pk]) in page
    dashboard = client.get(reverse("review:dashboard"))
    assert dashboard.context["data"].photos_reused == 1
    anonymous = Client().get(reverse("review:item", args=[thief.pk]))
    assert anonymous.status_code == 302


def test_the_webhook_payload_carries_the_photo_signals(original, other_seller):
    from listings.webhooks.models import WebhookDelivery, WebhookEndpoint

    WebhookEndpoint.objects.create(
        owner=other_seller, url="https://hooks.example.com/x", secret="s" * 20
    )
    thief = scored(orm_listing(other_seller, [stolen_copy(catalog_png(0))]))

    delivery = WebhookDelivery.objects.get(decision__to_status=Status.REVIEW)
    photos = delivery.payload["photos"]
    assert thief.status == Status.REVIEW
    assert [(p["index"], p["quality"]) for p in photos] == [(1, [])]
    assert photos[0]["reuse"]["listing_id"] == original.pk


def thief_crop(data: bytes, variant: int) -> bytes:
    """The region of a photo that its crop `variant`'s hash is of, a little
    brighter, as a JPEG."""
    from clipmatch.inference import photos as core

    image = core.crop_variant(Image.open(io.BytesIO(data)).convert("RGB"), variant)
    buffer = io.BytesIO()
    ImageEnhance.Brightness(image).enhance(1.05).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("stolen", ["a crop of the photo", "the photo of a crop"])
def test_a_cropped_reuse_is_confirmed_by_the_cosine_of_the_same_region(
    stolen, tiny_model, queued, seller, other_seller, settings
):
    """Whole, the two photos' embeddings are 0.986 apart with the test model;
    the crop's against the region it shows, 0.9998. Cut-offs that only the
    region's cosine passes (the 256-bit hashes are 2 bits apart)."""
    settings.CLIPMATCH = {
        **settings.CLIPMATCH,
        "PHOTO_REUSE_MIN_COSINE": 0.995,
        "PHOTO_REUSE_FINE_DISTANCE": 0,
    }
    photo, crop = catalog_png(3), thief_crop(catalog_png(3), 1)
    mine, theirs = (photo, crop) if stolen == "a crop of the photo" else (crop, photo)
    original = scored(orm_listing(seller, [mine]))

    thief = scored(orm_listing(other_seller, [theirs]))

    assert thief.status == Status.REVIEW
    reuse = thief.images.get().reuse
    assert (reuse["listing_id"], reuse["distance"]) == (original.pk, 0)
    assert reuse["cosine"] >= 0.999


def quality_defaults(settings, **overrides):
    settings.CLIPMATCH = {
        **settings.CLIPMATCH,
        **settings.PHOTO_QUALITY_DEFAULTS,
        **overrides,
    }


def blurred_png() -> bytes:
    image = Image.open(io.BytesIO(catalog_png(2))).filter(ImageFilter.GaussianBlur(3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_a_quality_finding_advises_by_default_and_the_listing_still_passes(
    tiny_model, queued, seller, settings
):
    quality_defaults(settings)

    listing = scored(orm_listing(seller, [blurred_png()]))

    assert listing.status == Status.PASSED
    assert listing.score.reasons[-1].startswith("The image looks blurred (sharpness ")
    assert listing.score.images[0]["quality"] == ["blurred"]
    assert listing.images.get().quality_flags == " blurred "


def test_a_finding_set_to_review_sends_the_listing_to_review(
    tiny_model, queued, seller, settings
):
    quality_defaults(settings, PHOTO_BLURRED="review")

    listing = scored(orm_listing(seller, [blurred_png()]))

    assert listing.status == Status.REVIEW
    assert "looks blurred" in listing.score.reasons[-1]


def test_the_precheck_tells_the_seller_about_a_small_photo(
    tiny_model, seller_api, settings
):
    quality_defaults(settings)
    CategoryFactory(name="sneaker")

    response = seller_api.post(
        "/api/v1/check/",
        {
            "title": "red sneaker",
            "category": "sneaker",
            "image": SimpleUploadedFile("s.png", catalog_png(3, size=120), "image/png"),
        },
        format="multipart",
    )

    body = response.json()
    assert response.status_code == 200
    assert (
        "The image is too small to judge (120×120 pixels; at least 160 on the "
        "shorter side)." in body["reasons"]
    )
    assert body["images"][0]["quality"] == ["too_small"]
    assert body["images"][0].get("reuse") is None


def test_the_backfill_computes_missing_signals_in_batches_and_reruns_to_nothing(
    seller, queued
):
    listing = orm_listing(seller, [catalog_png(0), catalog_png(1), catalog_png(2)])
    out = StringIO()

    call_command(
        "backfill_photo_signals", "--batch-size", "2", stdout=out, stderr=StringIO()
    )
    again = StringIO()
    call_command("backfill_photo_signals", stdout=again, stderr=StringIO())

    assert out.getvalue() == "Computed the photo signals of 3 images.\n"
    assert again.getvalue() == "Computed the photo signals of 0 images.\n"
    assert ImageHash.objects.filter(image__listing=listing).count() == 3 * 14
    assert not listing.images.filter(signals_at__isnull=True).exists()


def test_the_backfill_recomputes_images_whose_hash_rows_lack_the_fine_hash(
    seller, queued
):
    listing = orm_listing(seller, [catalog_png(0), catalog_png(1)])
    call_command("backfill_photo_signals", stdout=StringIO(), stderr=StringIO())
    first = listing.images.order_by("position").first()
    ImageHash.objects.filter(image=first).update(fine=None)
    out = StringIO()

    call_command("backfill_photo_signals", stdout=out, stderr=StringIO())

    assert out.getvalue() == "Computed the photo signals of 1 images.\n"
    assert not ImageHash.objects.filter(fine__isnull=True).exists()


def _explain(sql: str, params: list) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # On a table this small a sequential scan is cheaper; the question
            # here is whether the indexes can serve every part of the lookup.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(" ".join(map(str, row)) for row in cursor)


def test_every_part_of_the_lookup_uses_a_band_index(original):
    from clipmatch.inference import photos as core
    from listings.services.photos import lookup_sql

    hashes = core.hash_variants(Image.open(io.BytesIO(catalog_png(0))))
    sql, params = lookup_sql(hashes, 10)
    plan = _explain(sql, params)

    assert len(params) == 6
    assert sql.count(" UNION ALL ") == 5
    for n in range(3):
        assert f"imagehash_band{n}" in plan
    assert "SCAN listings_imagehash" not in plan and "Seq Scan" not in plan


def _store(image, coarse: list[int]) -> None:
    """Store these 64-bit hashes (photo first, then crops) through the app's own
    write, with a fine hash that confirms nothing."""
    from clipmatch.inference import photos as core
    from listings.services.photos import image_signals_store

    image_signals_store(
        image=image,
        hashes=core.PhotoHashes(coarse=coarse, fine=[0] * len(coarse)),
        quality={"measures": {}, "findings": []},
    )


def test_a_stored_photo_within_the_cut_off_is_always_found_and_one_beyond_is_not(
    original, other_seller, settings
):
    """Pigeonhole: a stored hash 10 bits off, spread 3, 3 and 4 over the bands,
    is found through the one band within 3 bits; a stored photo that is a crop
    of the new one, 8 bits from one of its crops (3, 3, 2), through the band
    within 2; 12 bits (4, 4, 4) is beyond the cut-off and not returned."""
    from clipmatch.inference import photos as core
    from listings.services.photos import reuse_candidates

    new = 0x0123456789ABCDEF
    crop = 0x7777777777777777
    ten = new ^ (0b111 << 50) ^ (0b111 << 30) ^ 0b1111
    eight = crop ^ (0b111 << 50) ^ (0b111 << 30) ^ 0b11
    twelve = new ^ (0b1111 << 48) ^ (0b1111 << 28) ^ 0b1111
    assert [core.hamming(new, ten), core.hamming(crop, eight)] == [10, 8]
    assert core.hamming(new, twelve) == 12
    images = [
        orm_listing(other_seller, [catalog_png(n)]).images.get() for n in (5, 6, 7)
    ]
    unrelated = 0xFFFFFFFF00000000
    _store(images[0], [unrelated, ten])  # a stored crop 10 bits off the new photo
    _store(images[1], [eight, unrelated])  # a stored photo near the new one's crop
    _store(images[2], [twelve])
    listing = orm_listing(original.seller, [catalog_png(8)])
    hashes = core.PhotoHashes(coarse=[new, crop], fine=[0, 0])

    found = reuse_candidates(
        hashes=hashes,
        seller_id=original.seller_id,
        listing_id=listing.pk,
        now=timezone.now(),
    )

    assert found == [(images[0].pk, 10, 0, (0, 1)), (images[1].pk, 8, 0, (1, 0))]


def test_the_demo_plants_reused_and_unusable_photos_and_counts_them(
    tiny_model, queued, settings
):
    from listings.demo import demo_plant_photos, demo_seed, demo_summary

    quality_defaults(settings)
    seeded = demo_seed(count=6, mismatch_rate=0.0, seed=3)
    for item in seeded:
        scored(Listing.objects.get(pk=item.listing_id))
    planted = demo_plant_photos(seeded, reused=2, unusable=2, seed=3)
    for item in planted:
        listing_score(listing_id=item.listing_id)

    summary = demo_summary(seeded + planted)
    assert (summary["planted_reused"], summary["reused_caught"]) == (2, 2)
    assert (summary["planted_unusable"], summary["unusable_caught"]) == (2, 2)
    assert json.loads(json.dumps(summary)) == summary


def test_the_band_migration_recomputes_each_rows_bands_from_its_hash(original):
    import importlib

    from django.db import connection

    from clipmatch.inference import photos as core

    migration = importlib.import_module(
        "listings.migrations.0009_imagehash_three_bands_fine"
    )
    ImageHash.objects.update(band0=0, band1=0, band2=0)
    with connection.cursor() as cursor:
        cursor.execute(migration.THREE_BANDS)

    rows = list(ImageHash.objects.values_list("phash", "band0", "band1", "band2"))
    assert len(rows) == 14
    assert any(phash < 0 for phash, *_ in rows)  # the sign bit is in band 0
    for phash, *stored in rows:
        assert tuple(stored) == core.bands(core.to_unsigned(phash))
