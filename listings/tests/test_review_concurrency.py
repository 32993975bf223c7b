"""Eight moderators draining one queue at once, on the database the suite runs on
(SQLite in IMMEDIATE mode in one CI pass, PostgreSQL in the other)."""

import threading
from collections import Counter

import pytest
from django.db import connection

from listings.models import Listing, ListingDecision, ReviewClaim
from listings.services.exceptions import StaleDecision
from listings.services.review import review_claim_next, review_decide
from listings.tests.factories import moderator, queue_item

MODERATORS = 8
ITEMS = 200


@pytest.mark.slow
def test_eight_moderators_drain_200_items_each_handed_out_and_decided_once(
    transactional_db, queued
):
    for n in range(ITEMS):
        queue_item(
            title=f"item {n}",
            status="held" if n % 5 == 0 else "review",
            title_similarity=0.1 + (n % 17) / 100,
            price=str(n),
        )
    users = [moderator(f"mod{i}") for i in range(MODERATORS)]
    handed: dict[str, list[int]] = {u.username: [] for u in users}
    refused_again: Counter = Counter()
    errors: list[BaseException] = []
    start = threading.Barrier(MODERATORS)

    def work(user):
        try:
            start.wait()
            while (item := review_claim_next(moderator=user)) is not None:
                handed[user.username].append(item.pk)
                seen = {
                    "expected_status": item.status,
                    "expected_content_hash": item.content_hash,
                }
                action = "approve" if item.pk % 2 else "reject"
                review_decide(
                    listing_id=item.pk,
                    moderator=user,
                    action=action,
                    reason_code="wrong_image",
                    **seen,
                )
                # A double submit of the same page must change nothing.
                try:
                    review_decide(
                        listing_id=item.pk, moderator=user, action="approve", **seen
                    )
                except StaleDecision:
                    refused_again[user.username] += 1
        except BaseException as exc:  # surfaced below, with the thread's name
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not [t.name for t in threads if t.is_alive()]
    assert errors == []
    claims = Counter(pk for ids in handed.values() for pk in ids)
    assert len(claims) == ITEMS
    assert [pk for pk, n in claims.items() if n > 1] == []  # none handed out twice
    per_listing = Counter(
        ListingDecision.objects.exclude(actor=None).values_list("listing", flat=True)
    )
    assert set(per_listing.values()) == {1}  # every listing decided exactly once
    assert len(per_listing) == ITEMS
    assert sum(refused_again.values()) == ITEMS
    assert not Listing.objects.filter(status__in=["review", "held"]).exists()
    assert not ReviewClaim.objects.filter(outcome="open").exists()
    assert sum(1 for ids in handed.values() if ids) >= 2  # it really ran in parallel
