"""Idempotency-Keys are kept for their retention, then purged in batches by an
hourly schedule."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from listings.models import IdempotencyKey
from listings.services.idempotency import idempotency_keys_purge
from listings.tasks import purge_idempotency_keys
from listings.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def keys_aged(user, hours: list[float]) -> None:
    """One key per age, as if created that many hours ago."""
    now = timezone.now()
    for n, age in enumerate(hours):
        key = IdempotencyKey.objects.create(user=user, key=f"k{n}", request_hash="h")
        # created_at is auto_now_add: set the age afterwards.
        IdempotencyKey.objects.filter(pk=key.pk).update(
            created_at=now - timedelta(hours=age)
        )


def remaining() -> list[str]:
    return sorted(IdempotencyKey.objects.values_list("key", flat=True))


def test_keys_older_than_the_retention_go_in_batches_and_younger_ones_stay():
    keys_aged(UserFactory(), [25, 30, 48, 24.1, 72, 23.9, 1])

    with CaptureQueriesContext(connection) as queries:
        deleted = idempotency_keys_purge(batch_size=2)

    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    assert deleted == 5
    assert remaining() == ["k5", "k6"]
    assert len(deletes) == 3  # 2 + 2 + 1
    assert idempotency_keys_purge(batch_size=2) == 0  # safe to run again


def test_the_retention_is_a_setting(settings):
    settings.CLIPMATCH_API = {**settings.CLIPMATCH_API, "IDEMPOTENCY_KEY_HOURS": 2}
    keys_aged(UserFactory(), [3, 1.5])

    assert purge_idempotency_keys() == 1
    assert remaining() == ["k1"]


def test_a_key_within_its_retention_still_replays_after_a_purge(seller_api):
    def post():
        return seller_api.post(
            "/api/v1/webhooks/",
            {"url": "https://example.com/hook", "secret": "a-long-shared-secret-1234"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="retry-me",
        )

    first = post()
    purge_idempotency_keys()
    again = post()

    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_a_retention_of_zero_hours_is_refused_by_the_checks(settings):
    from clipmatch.checks import check_settings

    settings.CLIPMATCH_API = {**settings.CLIPMATCH_API, "IDEMPOTENCY_KEY_HOURS": 0}

    assert [(e.id, e.msg) for e in check_settings()] == [
        (
            "clipmatch.E012",
            "CLIPMATCH_API_IDEMPOTENCY_KEY_HOURS must be a whole number above 0, "
            "not 0.",
        )
    ]
