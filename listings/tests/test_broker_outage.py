"""A broker that refuses connections never fails a write: the request gets its
normal answer, and the reconciler queues the work once the broker is back."""

import socket

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conftest import png_bytes
from listings.models import Listing
from listings.services.reconcile import scoring_reconcile
from listings.services.scoring import listing_score
from listings.tests.factories import CategoryFactory

URL = "/api/v1/listings/"


@pytest.fixture
def broker_refusing(monkeypatch):
    """django-q2 pointed at a Redis port nobody listens on, on either setup (never
    the shared Redis, which other tests and helpers use)."""
    from django_q.conf import Conf

    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "DJANGO_REDIS", None)
    monkeypatch.setattr(Conf, "REDIS", f"redis://127.0.0.1:{port}/0")


def _create(client):
    return client.post(
        URL,
        {
            "title": "red striped sneaker",
            "description": "A red sneaker with white stripes.",
            "category": "sneaker",
            "price": "49.90",
            "images": [SimpleUploadedFile("a.png", png_bytes(), "image/png")],
        },
        format="multipart",
    )


@pytest.mark.django_db(transaction=True)  # on_commit runs inside the request
def test_with_the_broker_down_a_create_answers_201_once_and_is_scored_later(
    seller_api, tiny_model, broker_refusing, monkeypatch, caplog
):
    CategoryFactory(name="sneaker")

    response = _create(seller_api)

    listing = Listing.objects.get()
    assert response.status_code == 201
    assert response.json()["id"] == listing.pk
    assert listing.status == Listing.Status.PENDING
    # Released for the reconciler's next pass rather than left to go stale.
    assert listing.scoring_queued_at is None
    assert "After commit, _queue_if_current" in caplog.text

    monkeypatch.undo()  # the broker is back
    from listings.services import queueing

    queued = []
    monkeypatch.setattr(
        queueing, "queue_task", lambda path, *args, task_name: queued.append(args)
    )
    report = scoring_reconcile()
    listing_score(listing_id=listing.pk)

    listing.refresh_from_db()
    assert report.requeued == [listing.pk]
    assert queued == [(listing.pk,)]
    assert listing.status == Listing.Status.PASSED
    assert Listing.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_a_reconciler_pass_finishes_and_releases_its_claims(
    seller, broker_refusing
):
    from listings.services.scoring import listing_request_scoring
    from listings.tests.factories import ListingImageFactory

    listings = [ListingImageFactory(listing__seller=seller).listing for _ in range(2)]
    for listing in listings:
        Listing.objects.filter(pk=listing.pk).update(content_hash="")
        listing_request_scoring(listing_id=listing.pk)
    Listing.objects.update(scoring_queued_at=None)

    report = scoring_reconcile()

    assert sorted(report.requeued) == sorted(x.pk for x in listings)
    assert list(Listing.objects.values_list("scoring_queued_at", flat=True)) == [
        None,
        None,
    ]
