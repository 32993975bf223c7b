"""Moderation through the API: thin wrappers over the review queue services."""

import pytest

from listings.models import Listing, ListingAppeal, ListingDecision
from listings.services.review import review_decide
from listings.services.scoring import listing_request_scoring
from listings.tests.factories import ListingFactory, queue_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def item(seller):
    return queue_item(seller=seller, title_similarity=0.25)


def decide_body(listing, action="approve", **extra):
    return {
        "action": action,
        "expected_status": listing.status,
        "expected_content_hash": listing.content_hash,
        **extra,
    }


def test_a_seller_is_refused_every_moderation_endpoint(seller_api, item):
    responses = {
        "next": seller_api.post("/api/v1/review/next/"),
        "claim": seller_api.post(f"/api/v1/review/{item.pk}/claim/"),
        "decide": seller_api.post(
            f"/api/v1/review/{item.pk}/decide/", decide_body(item), format="json"
        ),
        "release": seller_api.post(f"/api/v1/review/{item.pk}/release/"),
    }

    assert {name: r.status_code for name, r in responses.items()} == {
        "next": 403,
        "claim": 403,
        "decide": 403,
        "release": 403,
    }
    assert responses["decide"].json()["message"] == "Only moderators can do this."
    item.refresh_from_db()
    assert item.status == "review"
    assert item.claimed_by is None


def test_a_seller_cannot_decide_another_sellers_listing_even_knowing_its_state(
    other_seller_api, item
):
    response = other_seller_api.post(
        f"/api/v1/review/{item.pk}/decide/",
        decide_body(item, action="reject", reason_code="wrong_image"),
        format="json",
    )

    assert response.status_code == 403
    assert not ListingDecision.objects.filter(
        listing=item, to_status="rejected"
    ).exists()


def test_a_moderator_claims_the_next_item_and_approves_it(
    moderator_api, moderator, item
):
    claimed = moderator_api.post("/api/v1/review/next/")
    body = claimed.json()
    decided = moderator_api.post(
        f"/api/v1/review/{item.pk}/decide/",
        decide_body(item, note="Looks right."),
        format="json",
    )

    item.refresh_from_db()
    assert claimed.status_code == 200
    assert body["id"] == item.pk
    assert body["content_hash"] == item.content_hash
    assert body["claimed_until"] is not None
    assert decided.status_code == 200
    assert decided.json()["to_status"] == "approved"
    assert decided.json()["actor"] == "mo"
    assert item.status == "approved"


def test_an_empty_queue_answers_204(moderator_api):
    response = moderator_api.post("/api/v1/review/next/")

    assert response.status_code == 204


def test_a_stale_decision_is_a_409_and_writes_nothing(moderator_api, moderator, item):
    seen = decide_body(item)
    item.title = "blue dotted mug"
    item.save()  # the seller changed it: back to pending
    listing_request_scoring(listing_id=item.pk)
    before = ListingDecision.objects.count()

    response = moderator_api.post(
        f"/api/v1/review/{item.pk}/decide/", seen, format="json"
    )

    assert response.status_code == 409
    assert response.json() == {
        "code": "already_decided",
        "message": (
            "Not applied: the listing was review when you opened it and is "
            "awaiting check now."
        ),
        "fields": {},
    }
    assert ListingDecision.objects.count() == before


def test_a_decision_on_an_item_another_moderator_holds_is_a_409(moderator_api, item):
    from listings.services.review import review_claim
    from listings.tests.factories import moderator as make_moderator

    review_claim(listing_id=item.pk, moderator=make_moderator("other"))

    claim = moderator_api.post(f"/api/v1/review/{item.pk}/claim/")
    decide = moderator_api.post(
        f"/api/v1/review/{item.pk}/decide/", decide_body(item), format="json"
    )

    assert claim.status_code == 409
    assert claim.json()["message"] == "other is reviewing this listing."
    assert decide.status_code == 409
    assert decide.json()["message"] == (
        "Not applied: other is reviewing this listing now."
    )


def test_rejecting_without_a_known_reason_is_400(moderator_api, item):
    response = moderator_api.post(
        f"/api/v1/review/{item.pk}/decide/",
        decide_body(item, action="reject", reason_code="vibes"),
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["fields"]["reason_code"][0].startswith(
        "Pick a reason to reject: wrong_image, "
    )


def test_release_gives_the_item_back(moderator_api, item):
    moderator_api.post(f"/api/v1/review/{item.pk}/claim/")

    first = moderator_api.post(f"/api/v1/review/{item.pk}/release/")
    second = moderator_api.post(f"/api/v1/review/{item.pk}/release/")

    item.refresh_from_db()
    assert first.json() == {"released": True}
    assert second.json() == {"released": False}
    assert item.claimed_by is None


def test_history_shows_roles_to_the_seller_and_names_to_moderators(
    seller_api, other_seller_api, moderator_api, moderator, item
):
    review_decide(
        listing_id=item.pk,
        moderator=moderator,
        action="reject",
        expected_status=item.status,
        expected_content_hash=item.content_hash,
        reason_code="wrong_image",
    )
    path = f"/api/v1/listings/{item.pk}/decisions/"

    seller_rows = seller_api.get(path).json()
    moderator_rows = moderator_api.get(path).json()

    assert [(r["to_status"], r["actor"]) for r in seller_rows] == [
        ("review", "system"),
        ("rejected", "moderator"),
    ]
    assert [r["actor"] for r in moderator_rows] == ["system", "mo"]
    assert other_seller_api.get(path).status_code == 404


def test_a_seller_appeals_a_rejection_once(seller_api, moderator, item):
    review_decide(
        listing_id=item.pk,
        moderator=moderator,
        action="reject",
        expected_status=item.status,
        expected_content_hash=item.content_hash,
        reason_code="wrong_image",
    )
    path = f"/api/v1/listings/{item.pk}/appeal/"

    first = seller_api.post(path, {"message": "It is the right photo."}, format="json")
    second = seller_api.post(path, {"message": "Really."}, format="json")

    item.refresh_from_db()
    assert first.status_code == 201
    assert first.json()["message"] == "It is the right photo."
    assert item.status == "appealed"
    assert second.status_code == 409
    assert second.json()["message"] == "Only a rejected listing can be appealed."
    assert ListingAppeal.objects.count() == 1


def test_appeals_are_refused_to_other_sellers_and_moderators(
    other_seller_api, moderator_api, item
):
    path = f"/api/v1/listings/{item.pk}/appeal/"

    assert other_seller_api.post(path, {"message": "x"}, format="json").status_code == (
        404
    )
    assert moderator_api.post(path, {"message": "x"}, format="json").status_code == 403


def test_an_appeal_of_a_listing_that_was_not_rejected_is_409(seller_api, seller):
    listing = ListingFactory(seller=seller)

    response = seller_api.post(
        f"/api/v1/listings/{listing.pk}/appeal/", {"message": "why"}, format="json"
    )

    assert response.status_code == 409
    assert Listing.objects.get(pk=listing.pk).status == "pending"


def test_a_seller_reads_the_message_and_never_the_internal_note(
    seller_api, moderator_api, item
):
    response = moderator_api.post(
        f"/api/v1/review/{item.pk}/decide/",
        decide_body(
            item,
            "reject",
            reason_code="wrong_image",
            note="Same photo as the seller's listing 12: a reseller?",
        ),
        format="json",
    )
    assert response.status_code == 200, response.json()
    path = f"/api/v1/listings/{item.pk}/decisions/"

    rejection = seller_api.get(path).json()[-1]
    assert rejection["message"] == "Rejected: wrong image."
    assert "note" not in rejection
    assert "reseller" not in seller_api.get(path).content.decode()
    assert moderator_api.get(path).json()[-1]["note"] == (
        "Same photo as the seller's listing 12: a reseller?"
    )


def test_a_moderator_writes_the_seller_their_own_message(moderator_api, item):
    response = moderator_api.post(
        f"/api/v1/review/{item.pk}/decide/",
        decide_body(item, "approve", message="Thanks for the clearer photos."),
        format="json",
    )
    assert response.json()["message"] == "Thanks for the clearer photos."
    assert response.json()["note"] == ""


def undo_path(listing) -> str:
    return f"/api/v1/review/{listing.pk}/undo/"


def test_a_moderator_undoes_a_decision_once_however_often_the_request_is_sent(
    moderator_api, moderator, item
):
    moderator_api.post("/api/v1/review/next/")
    decided = moderator_api.post(
        f"/api/v1/review/{item.pk}/decide/",
        decide_body(item, "reject", reason_code="wrong_image"),
        format="json",
    ).json()
    key = {"HTTP_IDEMPOTENCY_KEY": "undo-812"}

    first = moderator_api.post(
        undo_path(item), {"decision": decided["id"]}, format="json", **key
    )
    again = moderator_api.post(
        undo_path(item), {"decision": decided["id"]}, format="json", **key
    )
    other_body = moderator_api.post(
        undo_path(item), {"decision": decided["id"] + 1}, format="json", **key
    )

    item.refresh_from_db()
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert other_body.status_code == 422
    body = first.json()
    assert (body["from_status"], body["to_status"], body["reason_code"]) == (
        "rejected",
        "review",
        "undo",
    )
    assert body["undoes"] == decided["id"]
    assert body["note"] == f"Took back wrong_image (decision {decided['id']})."
    assert ListingDecision.objects.filter(reason_code="undo").count() == 1
    assert (item.status, item.claimed_by) == ("review", moderator)


def test_undo_refusals_are_409s_that_name_their_cause(
    moderator_api, moderator, item, seller, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    from listings.tests.factories import moderator as make_moderator

    decided = moderator_api.post(
        f"/api/v1/review/{item.pk}/decide/", decide_body(item), format="json"
    ).json()
    elsewhere = queue_item(seller=seller, title_similarity=0.25)
    someone_elses = review_decide(
        listing_id=elsewhere.pk,
        moderator=make_moderator("other"),
        action="approve",
        expected_status=elsewhere.status,
        expected_content_hash=elsewhere.content_hash,
    )

    def undo(listing, decision_id):
        response = moderator_api.post(
            undo_path(listing), {"decision": decision_id}, format="json"
        )
        assert response.status_code == 409
        return response.json()["code"], response.json()["message"]

    not_this_listing = undo(elsewhere, decided["id"])
    not_yours = undo(elsewhere, someone_elses.pk)
    later = ListingDecision.objects.get(pk=decided["id"]).created_at + timedelta(
        seconds=31
    )
    with monkeypatch.context() as m:
        m.setattr(timezone, "now", lambda: later)
        too_late = undo(item, decided["id"])
    item.title = "blue dotted mug"
    item.save()  # the seller changed it: pending
    moved_on = undo(item, decided["id"])

    nothing = "There is no decision of yours to undo."
    assert not_this_listing == not_yours == ("nothing_to_undo", nothing)
    assert too_late == (
        "undo_window_closed",
        "Too late to undo: the window closed 30 seconds after the decision.",
    )
    assert moved_on == (
        "listing_moved_on",
        "Too late to undo: the listing has moved on since that decision.",
    )
    assert not ListingDecision.objects.filter(reason_code="undo").exists()


def test_a_seller_is_refused_undo_and_never_sees_a_decision_taken_back(
    seller_api, moderator_api, item
):
    decided = moderator_api.post(
        f"/api/v1/review/{item.pk}/decide/",
        decide_body(item, "reject", reason_code="wrong_image"),
        format="json",
    ).json()
    path = f"/api/v1/listings/{item.pk}/decisions/"
    during_window = [r["to_status"] for r in seller_api.get(path).json()]

    refused = seller_api.post(
        undo_path(item), {"decision": decided["id"]}, format="json"
    )
    moderator_api.post(undo_path(item), {"decision": decided["id"]}, format="json")
    approved = moderator_api.post(
        f"/api/v1/review/{item.pk}/decide/", decide_body(item), format="json"
    )

    assert refused.status_code == 403
    assert approved.status_code == 200
    assert during_window == ["review", "rejected"]
    # The seller was approved; the misclick before it never happened for them.
    assert [(r["to_status"], r["message"]) for r in seller_api.get(path).json()] == [
        ("review", ""),
        ("approved", "A moderator approved the listing."),
    ]
    assert [r["reason_code"] for r in moderator_api.get(path).json()] == [
        "scored_review",
        "wrong_image",
        "undo",
        "approved",
    ]


def test_the_schema_documents_undo_with_examples_and_its_409(client):
    schema = client.get(
        "/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    ).json()

    undo = schema["paths"]["/api/v1/review/{id}/undo/"]["post"]
    codes = schema["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
    assert undo["operationId"] == "undo_review_decision"
    assert "Idempotency-Key" in [p["name"] for p in undo["parameters"]]
    assert {"200", "409", "422"} <= set(undo["responses"])
    assert undo["requestBody"]["content"]["application/json"]["examples"][
        "TakeBackARejection"
    ]["value"] == {"decision": 812}
    answer = undo["responses"]["200"]["content"]["application/json"]
    assert answer["examples"]["TheUndo"]["value"]["reason_code"] == "undo"
    conflicts = undo["responses"]["409"]["content"]["application/json"]["examples"]
    assert {name: e["value"]["code"] for name, e in conflicts.items()} == {
        code: code
        for code in (
            "nothing_to_undo",
            "undo_window_closed",
            "listing_moved_on",
            "listing_gone",
        )
    }
    assert {"nothing_to_undo", "undo_window_closed", "listing_moved_on"} <= set(codes)
