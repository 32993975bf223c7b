"""Fixtures for the listings tests."""

import pytest

from listings.tests.factories import (
    CategoryFactory,
    ListingImageFactory,
)

PASS_ALL = {
    "title": {"pass": -1.0, "hold": -1.0},
    "description": {"pass": -1.0, "hold": -1.0},
}
HOLD_ALL = {
    "title": {"pass": 1.0, "hold": 1.0},
    "description": {"pass": 1.0, "hold": 1.0},
}
REVIEW_ALL = {
    "title": {"pass": 1.0, "hold": -1.0},
    "description": {"pass": 1.0, "hold": -1.0},
}


@pytest.fixture
def tiny_model(use_model, tiny_clip_dir):
    use_model(tiny_clip_dir, PASS_ALL)
    return tiny_clip_dir


@pytest.fixture
def listing_with_image(db):
    """A pending listing with one image; no task ran (on_commit never fires here)."""
    CategoryFactory(name="handbag")
    image = ListingImageFactory()
    return image.listing


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Throttle counters live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def _user_in(username: str, group: str | None):
    from django.contrib.auth.models import Group

    from listings.tests.factories import UserFactory

    user = UserFactory(username=username)
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


@pytest.fixture
def seller(db):
    return _user_in("alice", "Sellers")


@pytest.fixture
def other_seller(db):
    return _user_in("bob", "Sellers")


@pytest.fixture
def moderator(db):
    """A moderator as `create_moderator` makes one: staff, in the Moderators group
    with the review permissions."""
    from io import StringIO

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("create_moderator", username="mo", password="pw", stdout=StringIO())
    return get_user_model().objects.get(username="mo")


def token_client(user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user)}")
    return client


@pytest.fixture
def seller_api(seller):
    return token_client(seller)


@pytest.fixture
def other_seller_api(other_seller):
    return token_client(other_seller)


@pytest.fixture
def moderator_api(moderator):
    return token_client(moderator)


def metric_sample(text: str, name: str) -> float | None:
    """The value of one sample (name with its labels) in a Prometheus scrape."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def admin_add_listing_data(*, seller, category, upload, title: str = "red mug") -> dict:
    """The admin's add-listing form, filled in, with one image in its inline."""
    return {
        "seller": seller.pk,
        "title": title,
        "description": "",
        "price": "3",
        "category": category.pk,
        "images-TOTAL_FORMS": "1",
        "images-INITIAL_FORMS": "0",
        "images-0-image": upload,
        "images-0-position": "0",
        "decisions-TOTAL_FORMS": "0",
        "decisions-INITIAL_FORMS": "0",
        "scoring_attempts-TOTAL_FORMS": "0",
        "scoring_attempts-INITIAL_FORMS": "0",
    }
