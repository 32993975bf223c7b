"""Query counts of the selectors behind the review queue and the API: the same for
3 listings as for 30 (no query per row)."""

import pytest
from django.urls import reverse

from listings.models import Listing
from listings.selectors import listing_list, review_queue
from listings.tests.factories import UserFactory, moderator, queue_item

pytestmark = pytest.mark.django_db
SIZES = [3, 30]


def queue_items(n: int, *, seller=None) -> list[Listing]:
    """n listings in the review queue, each with a score and two images."""
    seller = seller or UserFactory(username="alice")
    return [
        queue_item(title=f"item {i}", title_similarity=0.25, images=2, seller=seller)
        for i in range(n)
    ]


@pytest.mark.parametrize("n", SIZES)
def test_the_review_queue_is_one_query_whatever_its_length(
    n, django_assert_num_queries
):
    queue_items(n)
    mod = moderator("mo")
    mod.has_perm("listings.decide_escalated")  # the permission cache, read once

    with django_assert_num_queries(1):
        items = list(review_queue(moderator=mod))

    assert len(items) == n


@pytest.mark.parametrize("n", SIZES)
def test_the_review_queue_page_reads_a_fixed_number_of_queries(
    n, client, django_assert_num_queries
):
    queue_items(n)
    client.force_login(moderator("mo"))

    with django_assert_num_queries(9):
        response = client.get(reverse("review:queue"))

    assert response.status_code == 200
    assert [item.title for item in response.context["items"]] == [
        f"item {i}" for i in range(n)
    ]


@pytest.mark.parametrize("images", [1, 8])
def test_a_review_item_page_reads_a_fixed_number_of_queries(
    images, client, django_assert_num_queries
):
    listing = queue_item(title_similarity=0.25, images=images)
    client.force_login(moderator("mo"))

    # Claiming it writes; the evidence is read once, whatever the number of images.
    with django_assert_num_queries(18):
        response = client.get(reverse("review:item", args=[listing.pk]))

    assert response.status_code == 200
    assert len(response.context["evidence"]["images"]) == images


@pytest.mark.parametrize("n", SIZES)
def test_visible_listings_and_all_they_show_are_three_queries(
    n, seller, django_assert_num_queries
):
    queue_items(n, seller=seller)

    # The user's roles, the listings with their joins, all of their images.
    with django_assert_num_queries(3):
        shown = [
            (
                x.category.name,
                x.seller.username,
                x.score.model_version.name,
                [i.position for i in x.images.all()],
            )
            for x in listing_list(user=seller, status="review")
        ]

    assert shown == [("sneaker", "alice", "clip-test", [0, 1])] * n


@pytest.mark.parametrize("n", SIZES)
def test_the_api_list_reads_a_fixed_number_of_queries(
    n, seller, seller_api, django_assert_num_queries
):
    queue_items(n, seller=seller)

    with django_assert_num_queries(4):
        response = seller_api.get("/api/v1/listings/", {"page_size": 50})

    assert response.status_code == 200
    assert len(response.json()["results"]) == n


@pytest.mark.parametrize("images", [1, 8])
def test_the_api_detail_reads_a_fixed_number_of_queries(
    images, seller, seller_api, django_assert_num_queries
):
    listing = queue_item(title_similarity=0.25, images=images, seller=seller)

    with django_assert_num_queries(4):
        response = seller_api.get(f"/api/v1/listings/{listing.pk}/")

    assert response.status_code == 200
    assert len(response.json()["images"]) == images


def _image_seen(index, title, description, *, category_ok=True):
    def band(sim):
        return "hold" if sim < 0.2 else "review" if sim < 0.3 else "pass"

    return {
        "index": index,
        "title": title,
        "description": description,
        "bands": {"title": band(title), "description": band(description)},
        "categories": [],
        "listed_rank": 1,
        "category_ok": category_ok,
    }


@pytest.mark.parametrize(
    ("seen", "worst", "labels"),
    [
        # A held photo after a passing one: the page opens on the second.
        (
            [_image_seen(1, 0.35, 0.4), _image_seen(2, 0.1, 0.4)],
            1,
            ["passes", "mismatch"],
        ),
        # Two in review: the lower similarity is the worse.
        (
            [_image_seen(1, 0.22, 0.25), _image_seen(2, 0.28, 0.29)],
            0,
            ["needs review", "needs review"],
        ),
        # A wrong category alone asks for review, above a passing photo.
        (
            [_image_seen(1, 0.31, 0.31), _image_seen(2, 0.4, 0.4, category_ok=False)],
            1,
            ["passes", "needs review"],
        ),
    ],
)
def test_the_evidence_opens_on_the_worst_image_and_names_each_band(seen, worst, labels):
    from listings.selectors import review_evidence

    listing = queue_item(title_similarity=0.1, images=2)
    listing.score.images = seen
    evidence = review_evidence(listing)
    assert evidence["worst_index"] == worst
    assert [row["band_label"] for row in evidence["images"]] == labels
