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
def queued(monkeypatch):
    """Record the listing ids handed to the task queue instead of queueing them."""
    calls: list[int] = []
    monkeypatch.setattr("listings.services._queue", calls.append)
    return calls


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
