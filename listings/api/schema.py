"""OpenAPI: every operation documents the error shape for the codes it can return."""

from __future__ import annotations

from listings.api.errors import ERROR_CODES

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
    "429": "Too many requests.",
    "503": "The model is unavailable.",
}
WRITE_METHODS = {"post", "put", "patch"}


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: add the Error component and the error
    responses every operation can give (auth, throttling, bad input)."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = (
        ERROR_SCHEMA
    )
    ref = {"$ref": "#/components/schemas/Error"}
    for _path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            codes = ["400", "401", "403", "404", "429"]
            if method in WRITE_METHODS:
                codes += ["413", "415"]
            codes += operation.pop("x-extra-errors", [])
            responses = operation.setdefault("responses", {})
            for code in codes:
                responses.setdefault(
                    code,
                    {
                        "description": DESCRIPTIONS[code],
                        "content": {"application/json": {"schema": ref}},
                    },
                )
    return result
