"""What the dispatcher really sends agrees with the webhooks the API schema
describes (callbacks of `create_webhook`): every body, exactly, and every header."""

import json
import re
from datetime import timedelta

import jsonschema
import pytest

from listings.services.review import review_undo
from listings.services.transitions import listing_transition
from listings.tests.factories import ListingImageFactory, queue_item
from listings.tests.test_review_services import decide
from listings.webhooks.models import WebhookDelivery
from listings.webhooks.services import (
    webhook_deliver,
    webhook_endpoint_create,
    webhook_retry_now,
)
from listings.webhooks.tests.test_webhooks import SECRET, Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def callbacks(client) -> tuple[dict, dict]:
    """The whole schema, as JSON Schema, and the callbacks of create_webhook."""
    schema = client.get(
        "/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    ).json()
    return strict(schema), schema["paths"]["/api/v1/webhooks/"]["post"]["callbacks"]


def strict(node):
    """OpenAPI 3.0 schemas as JSON Schema: `nullable` as a null type, and no
    property beyond those described, so that a payload with a key the schema does
    not name fails as surely as one missing a key it requires."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items()}
    if out.pop("nullable", False):
        out = {"anyOf": [out, {"type": "null"}]}
    if out.get("type") == "object" and "properties" in out:
        out["additionalProperties"] = False
    return out


def check(document: dict, schema: dict, value) -> None:
    validator = jsonschema.Draft202012Validator(
        {**document, **schema}, format_checker=jsonschema.FormatChecker()
    )
    validator.validate(value)


def test_every_payload_sent_is_exactly_what_the_schema_describes(
    seller, moderator, private_hosts_allowed, callbacks, queued_tasks
):
    document, described = callbacks
    with Receiver([]) as receiver:
        webhook_endpoint_create(owner=seller, url=receiver.url, secret=SECRET)
        webhook_endpoint_create(
            owner=moderator, url=receiver.url + "/back-office", secret=SECRET
        )
        # A verdict on a listing with no score, a verdict with one, a rejection
        # (sent when its window closes), one sent early and then undone.
        bare = ListingImageFactory(listing__seller=seller).listing
        listing_transition(listing=bare, to_status="held", reason_code="scored_hold")
        item = queue_item(seller=seller, title_similarity=0.25)
        rejection = decide(
            item, moderator, "reject", reason_code="wrong_image", note="A reseller?"
        )
        approval = decide(queue_item(seller=seller, title_similarity=0.25), moderator)
        for early in WebhookDelivery.objects.filter(decision=approval):
            webhook_retry_now(delivery=early)  # "Send again now", in the window
            assert webhook_deliver(delivery_id=early.pk).outcome == "delivered"
        review_undo(decision_id=approval.pk, moderator=moderator)
        later = rejection.created_at + timedelta(seconds=31)
        for delivery in WebhookDelivery.objects.filter(status="pending"):
            assert webhook_deliver(delivery_id=delivery.pk, now=later).outcome == (
                "delivered"
            )
        requests = list(receiver.requests)

    bodies = [json.loads(body) for _, body in requests]
    # Every kind of event, for the seller and for the back office, with and
    # without the fields that may be null.
    assert sorted((b["event"], b["decision"]["reason_code"]) for b in bodies) == [
        ("listing.decision", "approved"),
        ("listing.decision", "approved"),
        ("listing.decision", "undo"),
        ("listing.decision", "undo"),
        ("listing.decision", "wrong_image"),
        ("listing.decision", "wrong_image"),
        ("listing.verdict", "scored_hold"),
        ("listing.verdict", "scored_hold"),
        ("listing.verdict", "scored_review"),
        ("listing.verdict", "scored_review"),
        ("listing.verdict", "scored_review"),
        ("listing.verdict", "scored_review"),
    ]
    assert {b["decision"]["score"] is None for b in bodies} == {True, False}
    assert {b["decision"]["undoes"] is None for b in bodies} == {True, False}
    assert {b["decision"]["actor"] for b in bodies} == {"system", "moderator", "mo"}
    assert "reseller" not in json.dumps(bodies)
    for headers, body in requests:
        event = json.loads(body)["event"]
        (operation,) = described[event].values()
        post = operation["post"]
        body_schema = post["requestBody"]["content"]["application/json"]["schema"]
        check(document, body_schema, json.loads(body))
        sent = {k: v for k, v in headers.items() if k.startswith("X-Clipmatch-")}
        assert set(sent) == {p["name"] for p in post["parameters"]}
        for parameter in post["parameters"]:
            check(document, parameter["schema"], sent[parameter["name"]])
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Clipmatch-Delivery"] == json.loads(body)["id"]


def test_a_payload_with_a_key_the_schema_does_not_name_is_refused(callbacks):
    """The check above would catch a serializer that grew a field."""
    document, described = callbacks
    (operation,) = described["listing.verdict"].values()
    schema = operation["post"]["requestBody"]["content"]["application/json"]
    body = {
        "id": "0b6f6f7e-8f8f-4b5e-9a59-1c1f5c2b9a11",
        "event": "listing.verdict",
        "created_at": "2026-01-12T09:30:05Z",
        "listing": {"id": 1, "title": "mug", "status": "held", "seller_id": 2},
        "decision": {
            "id": 3,
            "from_status": "pending",
            "to_status": "held",
            "reason_code": "scored_hold",
            "message": "",
            "undoes": None,
            "actor": "system",
            "model_version": "",
            "score": None,
        },
        "photos": [{"index": 1, "quality": ["blurred"], "reuse": None}],
    }
    check(document, schema["schema"], body)

    with pytest.raises(jsonschema.ValidationError, match="'note' was unexpected"):
        check(
            document,
            schema["schema"],
            {**body, "decision": {**body["decision"], "note": "internal"}},
        )


def test_the_schema_names_each_event_and_documents_the_signature(callbacks):
    _, described = callbacks

    assert set(described) == {"listing.verdict", "listing.decision"}
    for event, expressions in described.items():
        (path,) = expressions
        post = expressions[path]["post"]
        parameters = {p["name"]: p for p in post["parameters"]}
        assert path == "{$request.body#/url}"
        assert parameters["X-Clipmatch-Event"]["schema"]["enum"] == [event]
        assert parameters["X-Clipmatch-Signature"]["required"] is True
        assert re.fullmatch(
            parameters["X-Clipmatch-Signature"]["schema"]["pattern"],
            "t=1700000000,v1=" + "0" * 64,
        )
        assert "HMAC-SHA256" in parameters["X-Clipmatch-Signature"]["description"]
        assert set(post["responses"]) == {"200"}
