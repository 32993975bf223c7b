"""OpenAPI: every operation documents the error shape for the codes it can return."""

from __future__ import annotations

import re

from listings.api.errors import ERROR_CODES, error_body
from listings.webhooks.payloads import EVENT_HEADER
from listings.webhooks.payloads import HEADERS as WEBHOOK_HEADERS

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error has this shape.",
    "properties": {
        "code": {
            "type": "string",
            "enum": list(ERROR_CODES),
            "description": "Machine-readable error code: "
            + "; ".join(
                f"`{code}`: {meaning}" for code, meaning in ERROR_CODES.items()
            ),
        },
        "message": {"type": "string", "description": "A sentence for a person."},
        "fields": {
            "type": "object",
            "description": "Field name -> messages, for errors about input fields.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["code", "message", "fields"],
    "example": {
        "code": "stale_content",
        "message": "Not applied: the seller changed the listing since you opened it.",
        "fields": {},
    },
}
DESCRIPTIONS = {
    "400": "Bad input.",
    "401": "Not authenticated.",
    "403": "Not allowed for this user.",
    "404": "Not found (also for other sellers' objects).",
    "409": "Conflict with the current state.",
    "413": "Upload too large.",
    "415": "Unsupported media or image type.",
    "422": "The Idempotency-Key was used with another request.",
    "429": "Too many requests.",
    "503": "The model is unavailable.",
}
WRITE_METHODS = {"post", "put", "patch"}
# Operation ids that read as what they do, by path (parameters as {}) and method.
OPERATION_IDS = {
    ("/api/v1/listings/", "get"): "list_listings",
    ("/api/v1/listings/", "post"): "create_listing",
    ("/api/v1/listings/{}/", "get"): "get_listing",
    ("/api/v1/listings/{}/", "patch"): "update_listing",
    ("/api/v1/listings/{}/", "delete"): "delete_listing",
    ("/api/v1/listings/{}/decisions/", "get"): "list_listing_decisions",
    ("/api/v1/listings/{}/appeal/", "post"): "appeal_listing",
    ("/api/v1/categories/", "get"): "list_categories",
    ("/api/v1/check/", "post"): "check_listing",
    ("/api/v1/review/next/", "post"): "claim_next_review_item",
    ("/api/v1/review/{}/claim/", "post"): "claim_review_item",
    ("/api/v1/review/{}/decide/", "post"): "decide_review_item",
    ("/api/v1/review/{}/release/", "post"): "release_review_item",
    ("/api/v1/review/{}/undo/", "post"): "undo_review_decision",
    ("/api/v1/webhooks/", "get"): "list_webhooks",
    ("/api/v1/webhooks/", "post"): "create_webhook",
    ("/api/v1/webhooks/{}/", "get"): "get_webhook",
    ("/api/v1/webhooks/{}/", "delete"): "delete_webhook",
    ("/api/v1/webhooks/{}/deliveries/", "get"): "list_webhook_deliveries",
    ("/api/v1/model-versions/", "get"): "list_model_versions",
    ("/api/v1/model-versions/{}/", "get"): "get_model_version",
    ("/api/v1/model-versions/{}/activate/", "post"): "activate_model_version",
}


# OpenAPI links: where a response's id can be used next, so that a client (and
# schemathesis's stateful phase) follows a created or listed object through the
# operations on it. (operation, status, JSON pointer to the id) -> operations.
ON_LISTING = [
    "get_listing",
    "update_listing",
    "list_listing_decisions",
    "appeal_listing",
]
ON_REVIEW_ITEM = ["claim_review_item", "decide_review_item", "release_review_item"]
ON_WEBHOOK = ["get_webhook", "list_webhook_deliveries"]
LINKS = {
    ("create_listing", "201", "/id"): [*ON_LISTING, "delete_listing"],
    ("list_listings", "200", "/results/0/id"): ON_LISTING,
    ("get_listing", "200", "/id"): [*ON_LISTING[1:], "delete_listing"],
    ("update_listing", "200", "/id"): ON_LISTING,
    ("claim_next_review_item", "200", "/id"): [*ON_REVIEW_ITEM, "get_listing"],
    ("claim_review_item", "200", "/id"): ON_REVIEW_ITEM[1:],
    ("create_webhook", "201", "/id"): [*ON_WEBHOOK, "delete_webhook"],
    ("list_webhooks", "200", "/results/0/id"): ON_WEBHOOK,
    ("list_model_versions", "200", "/results/0/id"): ["get_model_version"],
    ("get_model_version", "200", "/id"): ["activate_model_version"],
}


def add_links(result, generator, request, public):
    """drf-spectacular postprocessing hook (after add_error_responses, which names
    the operations): add LINKS to the responses they start from."""
    operations = {
        operation.get("operationId"): operation
        for path_item in result.get("paths", {}).values()
        for operation in path_item.values()
        if isinstance(operation, dict)
    }
    for (source, status, pointer), targets in LINKS.items():
        response = operations[source]["responses"][status]
        response["links"] = {
            target: {
                "operationId": target,
                "parameters": {"id": f"$response.body#{pointer}"},
            }
            for target in targets
        }
    return result


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: add the Error component and the error
    responses every operation can give (auth, throttling, bad input)."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = (
        ERROR_SCHEMA
    )
    ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            named = OPERATION_IDS.get((re.sub(r"\{[^}]+\}", "{}", path), method))
            if named:
                operation["operationId"] = named
            codes = ["400", "401", "403", "404", "429"]
            if method in WRITE_METHODS:
                codes += ["413", "415"]
            codes += operation.pop("x-extra-errors", [])
            examples = operation.pop("x-error-examples", {})
            _add_webhook_headers(operation)
            responses = operation.setdefault("responses", {})
            for code in codes:
                responses.setdefault(
                    code,
                    {
                        "description": DESCRIPTIONS[code],
                        "content": {"application/json": {"schema": ref}},
                    },
                )
            for status, messages in examples.items():
                # Each error code the operation answers with, as the body it gets.
                responses[status]["content"]["application/json"]["examples"] = {
                    code: {"summary": ERROR_CODES[code], "value": error_body(code, m)}
                    for code, m in messages.items()
                }
    return result


def _add_webhook_headers(operation: dict) -> None:
    """The headers of every webhook POST, as parameters of each callback (which
    drf-spectacular's callbacks cannot declare)."""
    parameters = [
        {
            "name": name,
            "in": "header",
            "required": True,
            "description": description,
            "schema": schema,
        }
        for name, (description, schema) in WEBHOOK_HEADERS.items()
    ]
    for event, expressions in operation.get("callbacks", {}).items():
        # Each callback is one event, which its event header names.
        named = [
            {**p, "schema": {"type": "string", "enum": [event]}}
            if p["name"] == EVENT_HEADER
            else p
            for p in parameters
        ]
        for path_item in expressions.values():
            for callback in path_item.values():
                callback["parameters"] = named
