"""The review pages through Django's test client: access, the claim-decide-next
loop, refusals shown to the moderator, images and the dashboard."""

import pytest
from django.urls import reverse
from django.utils import timezone

from listings.models import Listing, ListingDecision
from listings.tests.factories import (
    ListingImageFactory,
    UserFactory,
    moderator,
    queue_item,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def mod_client(client):
    user = moderator("alice")
    client.force_login(user)
    client.user = user
    return client


def test_anonymous_users_are_sent_to_log_in(client):
    response = client.get(reverse("review:queue"))
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/review/"


def test_staff_without_the_moderator_permission_are_refused(client):
    client.force_login(UserFactory(username="clerk", is_staff=True))
    assert client.get(reverse("review:queue")).status_code == 403
    assert client.get(reverse("review:dashboard")).status_code == 403


def test_next_claims_the_most_urgent_item_and_a_decision_opens_the_next(mod_client):
    first = queue_item(title="held one", status="held", title_similarity=0.1)
    second = queue_item(title="review one", title_similarity=0.25)
    response = mod_client.get(reverse("review:next"))
    assert response["Location"] == reverse("review:item", args=[first.pk])
    page = mod_client.get(response["Location"])
    assert b"held one" in page.content
    assert Listing.objects.get(pk=first.pk).claimed_by == mod_client.user
    response = mod_client.post(
        reverse("review:decide", args=[first.pk]),
        {
            "action": "reject",
            "reason_code": "wrong_image",
            "expected_status": "held",
            "expected_content_hash": first.content_hash,
        },
    )
    assert response["Location"] == reverse("review:next")
    assert mod_client.get(response["Location"])["Location"] == reverse(
        "review:item", args=[second.pk]
    )
    decision = ListingDecision.objects.exclude(actor=None).get()
    assert (decision.listing_id, decision.to_status, decision.reason_code) == (
        first.pk,
        "rejected",
        "wrong_image",
    )


def test_filters_are_carried_from_item_to_item(mod_client):
    item = queue_item(title_similarity=0.25)
    response = mod_client.get(reverse("review:next") + "?band=review")
    assert response["Location"] == reverse("review:item", args=[item.pk]) + (
        "?band=review"
    )


def test_a_stale_decision_is_refused_with_a_message_and_changes_nothing(mod_client):
    item = queue_item(title="decided elsewhere")
    bob = moderator("bob")
    from listings.services.review import review_decide

    review_decide(
        listing_id=item.pk,
        moderator=bob,
        action="approve",
        expected_status="review",
        expected_content_hash=item.content_hash,
    )
    response = mod_client.post(
        reverse("review:decide", args=[item.pk]),
        {
            "action": "reject",
            "reason_code": "wrong_image",
            "expected_status": "review",
            "expected_content_hash": item.content_hash,
        },
        follow=True,
    )
    text = response.content.decode()
    assert "Not applied: the listing was review when you opened it" in text
    assert "is approved by bob now" in text
    assert Listing.objects.get(pk=item.pk).status == "approved"
    assert ListingDecision.objects.exclude(actor=None).count() == 1


def test_a_reject_without_a_reason_keeps_the_item_open(mod_client):
    item = queue_item()
    mod_client.get(reverse("review:item", args=[item.pk]))
    response = mod_client.post(
        reverse("review:decide", args=[item.pk]),
        {
            "action": "reject",
            "expected_status": "review",
            "expected_content_hash": item.content_hash,
        },
    )
    assert response["Location"] == reverse("review:item", args=[item.pk])
    assert Listing.objects.get(pk=item.pk).status == "review"


def test_an_item_someone_else_holds_is_not_opened(mod_client):
    from listings.services.review import review_claim

    item = queue_item()
    review_claim(listing_id=item.pk, moderator=moderator("bob"))
    response = mod_client.get(reverse("review:item", args=[item.pk]), follow=True)
    assert "bob is reviewing this listing." in response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("review:queue")


def test_renew_answers_409_once_the_claim_is_lost(mod_client):
    item = queue_item()
    mod_client.get(reverse("review:item", args=[item.pk]))
    assert mod_client.post(reverse("review:renew", args=[item.pk])).json()["claimed"]
    Listing.objects.filter(pk=item.pk).update(claimed_by=moderator("bob"))
    response = mod_client.post(reverse("review:renew", args=[item.pk]))
    assert response.status_code == 409
    assert response.json()["message"] == "bob is reviewing this listing."


def test_images_are_served_to_moderators_typed_by_their_bytes(mod_client, client):
    image = ListingImageFactory()
    url = reverse("review:image", args=[image.pk])
    response = mod_client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    client.logout()
    assert client.get(url).status_code == 302


def test_the_dashboard_counts_the_queue_and_draws_the_scores(mod_client):
    held = queue_item(status="held", title_similarity=0.1)
    queue_item(title_similarity=0.25)
    from listings.services.review import review_decide

    review_decide(
        listing_id=held.pk,
        moderator=mod_client.user,
        action="approve",
        expected_status="held",
        expected_content_hash=held.content_hash,
    )
    response = mod_client.get(reverse("review:dashboard"))
    data = response.context["data"]
    assert data.queue_length == 1
    assert data.per_moderator[0][0] == "alice"
    assert sum(data.per_moderator[0][1]) == 1
    # Today's column comes first, where a narrow screen still shows it.
    assert data.days[0] == timezone.localdate()
    assert data.per_moderator[0][1][0] == 1
    assert data.overturns == [
        {
            "category": "sneaker",
            "decisions": 1,
            "approved_held": 1,
            "rejected_passed": 0,
            "rate": 1.0,
        }
    ]
    assert data.decisions_timed == 1
    html = response.content.decode()
    assert html.count("<svg") == 2
    assert "hold 0.200" in html and "pass 0.300" in html


def test_the_item_page_shows_the_sellers_record_and_their_other_listings(
    mod_client, settings
):
    from listings.tests.factories import ListingFactory

    settings.CLIPMATCH = {**settings.CLIPMATCH, "CURRENCY": "SEK"}
    bob = UserFactory(username="bob")
    item = queue_item(title="held one", seller=bob, title_similarity=0.1)
    for title, status in (("old lamp", "rejected"), ("old mug", "passed")):
        other = ListingFactory(seller=bob, title=title)
        Listing.objects.filter(pk=other.pk).update(status=status)
    ListingFactory(title="someone else's")

    page = mod_client.get(reverse("review:item", args=[item.pk])).content.decode()

    start = page.index('id="seller-panel"')
    panel = page[start : page.index("</section>", start)]
    assert "old lamp" in panel and "old mug" in panel
    assert "someone else" not in panel and "held one" not in panel
    assert 'id="seller-passed">1<' in panel
    assert 'id="seller-rejected">1<' in panel
    assert f'href="/review/?seller={bob.pk}"' in panel
    assert "49.90 SEK" in page


def test_the_queue_narrows_to_a_seller_and_to_a_search(mod_client):
    bob = UserFactory(username="bob")
    queue_item(title="red sneaker", seller=bob, title_similarity=0.25)
    queue_item(title="blue sneaker", title_similarity=0.25)
    queue_item(
        title="green lamp",
        description="Bright.",
        seller=bob,
        title_similarity=0.25,
    )

    def titles(**query):
        response = mod_client.get(reverse("review:queue"), query)
        return sorted(item.title for item in response.context["items"])

    assert titles(seller=bob.pk) == ["green lamp", "red sneaker"]
    assert titles(q="sneaker") == ["blue sneaker", "red sneaker"]
    assert titles(q="bob") == ["green lamp", "red sneaker"]
    assert titles(q="sneaker", seller=bob.pk) == ["red sneaker"]
