"""The site's root, its icon and the admin's way back to it."""

import pytest
from django.urls import reverse

from listings.tests.factories import UserFactory, moderator

pytestmark = pytest.mark.django_db


def test_the_root_sends_a_moderator_to_the_review_queue(client):
    client.force_login(moderator("alice"))

    response = client.get("/")

    assert (response.status_code, response["Location"]) == (302, "/review/")
    assert client.get(response["Location"]).status_code == 200


@pytest.mark.parametrize(
    "who", ["anonymous", "seller", "staff without the review permission"]
)
def test_the_root_sends_everyone_else_to_the_api_docs(client, seller, who):
    if who == "seller":
        client.force_login(seller)
    elif who != "anonymous":
        client.force_login(UserFactory(username="clerk", is_staff=True))

    response = client.get("/")

    assert (response.status_code, response["Location"]) == (302, "/api/docs/")
    assert client.get(response["Location"]).status_code == 200


def test_the_admins_view_site_link_leads_to_the_root(client):
    client.force_login(moderator("alice"))

    page = client.get(reverse("admin:index")).content.decode()

    assert '<a href="/">View site</a>' in page


def test_the_favicon_is_a_small_icon_cached_for_a_day(client):
    response = client.get("/favicon.ico")
    body = b"".join(response.streaming_content)

    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert response["Cache-Control"] == "max-age=86400, public"
    assert body[:4] == b"\x00\x00\x01\x00"  # an ICO file's header
    assert len(body) < 8192
