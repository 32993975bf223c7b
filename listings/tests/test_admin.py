"""The admin shows listings with status, score, model version, reasons and images."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from conftest import png_bytes
from listings.models import Listing
from listings.services.scoring import listing_request_scoring, listing_score
from listings.tests.conftest import admin_add_listing_data
from listings.tests.factories import ListingImageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(client):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def scored_listing(tiny_model, queued):
    listing = ListingImageFactory().listing
    listing_request_scoring(listing_id=listing.pk)
    listing_score(listing_id=listing.pk)
    listing.refresh_from_db()
    return listing


def test_changelist_shows_status_score_and_model_version(
    admin_client_logged_in, scored_listing
):
    response = admin_client_logged_in.get(reverse("admin:listings_listing_changelist"))

    page = response.content.decode()
    assert response.status_code == 200
    assert "red striped sneaker" in page
    assert ">Passed</span>" in page
    assert f"{scored_listing.score.similarity:.3f}" in page
    assert str(scored_listing.score.model_version) in page


def test_changelist_filters_by_status(admin_client_logged_in, scored_listing):
    url = reverse("admin:listings_listing_changelist")

    held = admin_client_logged_in.get(url, {"status__exact": "held"})
    passed = admin_client_logged_in.get(url, {"status__exact": "passed"})

    assert "red striped sneaker" not in held.content.decode()
    assert "red striped sneaker" in passed.content.decode()


def test_change_page_shows_reasons_evidence_images_and_history(
    admin_client_logged_in, scored_listing
):
    url = reverse("admin:listings_listing_change", args=[scored_listing.pk])

    page = admin_client_logged_in.get(url).content.decode()

    assert "The image matches the title and description." in page
    assert "Listed category rank" in page
    assert scored_listing.images.get().image.url in page
    assert "scored_pass" in page
    assert "system" in page


def test_saving_in_the_admin_cannot_change_the_status(
    admin_client_logged_in, scored_listing
):
    url = reverse("admin:listings_listing_change", args=[scored_listing.pk])
    page = admin_client_logged_in.get(url)
    form = page.context["adminform"].form

    assert "status" not in form.fields


def test_a_stale_instance_cannot_revert_a_status(scored_listing):
    stale = Listing.objects.get(pk=scored_listing.pk)
    Listing.objects.filter(pk=stale.pk).update(status=Listing.Status.HELD)

    stale.price = "1.00"
    stale.save()

    stale.refresh_from_db()
    assert (str(stale.price), stale.status) == ("1.00", Listing.Status.HELD)


def test_the_admin_refuses_an_image_that_would_not_decode(admin_client_logged_in, db):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from listings.tests.factories import CategoryFactory

    category = CategoryFactory()
    seller = get_user_model().objects.create_user("seller-x")
    hostile = SimpleUploadedFile(
        "photo.png", png_bytes() + b"<html><script>x</script></html>", "image/png"
    )
    response = admin_client_logged_in.post(
        reverse("admin:listings_listing_add"),
        admin_add_listing_data(seller=seller, category=category, upload=hostile),
    )

    assert response.status_code == 200
    assert "the PNG has data after its end marker" in response.content.decode()
    assert not Listing.objects.filter(title="red mug").exists()


def test_bulk_reject_asks_for_a_reason_then_decides_each_listing(
    admin_client_logged_in,
):
    from listings.models import ListingDecision
    from listings.tests.factories import queue_item

    first, second = queue_item(title="one"), queue_item(title="two")
    url = reverse("admin:listings_listing_changelist")
    chosen = {"action": "reject_selected", "_selected_action": [first.pk, second.pk]}

    form = admin_client_logged_in.post(url, chosen)
    assert form.status_code == 200
    assert "Wrong category" in form.content.decode()
    assert not ListingDecision.objects.exclude(actor=None).exists()

    done = admin_client_logged_in.post(
        url, {**chosen, "apply": "1", "reason_code": "wrong_category"}, follow=True
    )
    assert "Rejected 2 listing(s)." in done.content.decode()
    assert sorted(
        ListingDecision.objects.exclude(actor=None).values_list(
            "listing__title", "to_status", "reason_code", "actor__username"
        )
    ) == [
        ("one", "rejected", "wrong_category", "boss"),
        ("two", "rejected", "wrong_category", "boss"),
    ]


def test_bulk_approve_reports_listings_it_could_not_change(admin_client_logged_in):
    from listings.tests.factories import ListingFactory, queue_item

    waiting = queue_item(title="waiting")
    pending = ListingFactory(title="still pending")
    response = admin_client_logged_in.post(
        reverse("admin:listings_listing_changelist"),
        {"action": "approve_selected", "_selected_action": [waiting.pk, pending.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert "Approved 1 listing(s)." in page
    assert f"Listing {pending.pk} not changed" in page
    assert Listing.objects.get(pk=waiting.pk).status == "approved"
    assert Listing.objects.get(pk=pending.pk).status == "pending"


def test_bulk_rescore_routes_the_selected_listing_by_the_thresholds_now_in_force(
    admin_client_logged_in,
    scored_listing,
    use_model,
    tiny_clip_dir,
    sync_queue,
    django_capture_on_commit_callbacks,
):
    from listings.tests.conftest import HOLD_ALL

    assert scored_listing.status == "passed"
    use_model(tiny_clip_dir, HOLD_ALL)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_logged_in.post(
            reverse("admin:listings_listing_changelist"),
            {"action": "rescore_selected", "_selected_action": [scored_listing.pk]},
            follow=True,
        )
    assert "Queued 1 listing(s) for rescoring" in response.content.decode()
    scored_listing.refresh_from_db()
    assert scored_listing.status == "held"
    assert scored_listing.score.thresholds["title"] == HOLD_ALL["title"]
    assert scored_listing.decisions.last().reason_code == "rescored"


def test_filters_by_band_and_by_how_long_ago_it_was_scored(admin_client_logged_in):
    from datetime import timedelta

    from django.utils import timezone

    from listings.models import ListingScore
    from listings.tests.factories import queue_item

    queue_item(title="fresh hold", status="held", title_similarity=0.1)
    old = queue_item(title="old review", title_similarity=0.25)
    ListingScore.objects.filter(listing=old).update(
        computed_at=timezone.now() - timedelta(days=10)
    )
    url = reverse("admin:listings_listing_changelist")
    held = admin_client_logged_in.get(url, {"band": "hold"}).content.decode()
    stale = admin_client_logged_in.get(url, {"scored_days_ago": "7"}).content.decode()
    assert "fresh hold" in held and "old review" not in held
    assert "old review" in stale and "fresh hold" not in stale


def test_a_moderator_decides_on_the_change_page_and_cannot_edit_the_sellers_words(
    client,
):
    from django.contrib.auth.models import Permission

    from listings.models import ListingDecision
    from listings.tests.factories import moderator, queue_item

    mod = moderator("mo")
    mod.user_permissions.add(Permission.objects.get(codename="change_listing"))
    client.force_login(mod)
    item = queue_item(title="striped sneaker", title_similarity=0.25)
    url = reverse("admin:listings_listing_change", args=[item.pk])

    page = client.get(url).content.decode()
    assert 'name="title"' not in page and "striped sneaker" in page
    assert 'name="_decide" value="approve"' in page
    response = client.post(
        url,
        {
            "_decide": "reject",
            "decide_reason_code": "wrong_image",
            "decide_note": "Seen before.",
            "expected_status": item.status,
            "expected_content_hash": item.content_hash,
        },
    )

    assert response.status_code == 302
    decision = ListingDecision.objects.exclude(actor=None).get()
    assert (decision.to_status, decision.reason, decision.seller_message) == (
        "rejected",
        "Seen before.",
        "Rejected: wrong image.",
    )
    stale = client.post(
        url,
        {
            "_decide": "approve",
            "expected_status": item.status,
            "expected_content_hash": item.content_hash,
        },
        follow=True,
    )
    assert "Not applied" in stale.content.decode()
    assert ListingDecision.objects.exclude(actor=None).count() == 1
