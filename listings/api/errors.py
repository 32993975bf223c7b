"""One shape for every API error: {"code", "message", "fields"}."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFilesSent,
)
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

# Every `code` an error body can carry, with what it means: the schema's enum.
ERROR_CODES = {
    "invalid": "A field or parameter has a bad value (see `fields`).",
    "unknown_field": "A field or query parameter the operation does not take.",
    "parse_error": "The body could not be parsed.",
    "not_authenticated": "No credentials were sent.",
    "authentication_failed": "The credentials are wrong.",
    "permission_denied": "The user may not do this.",
    "not_found": "No such object, or not one of yours.",
    "method_not_allowed": "The path does not take this method.",
    "not_acceptable": "No answer in the media type asked for.",
    "unsupported_media_type": "The body's media type is not one the path takes.",
    "throttled": "Too many requests; see Retry-After.",
    "too_large": "The request is too large.",
    "image_too_large": "A photo is over the size or pixel limit.",
    "unsupported_image_type": "A photo is in a format the API does not take.",
    "unreadable_image": "A photo could not be decoded.",
    "unavailable": "The model cannot run now; try again later.",
    "idempotency_key_reused": "The Idempotency-Key was used with another request.",
    "idempotency_key_in_use": "A request with this Idempotency-Key is running.",
    "stale_content": "The seller changed the listing since you loaded it.",
    "already_decided": "The listing was decided, or moved on, since you loaded it.",
    "claimed_by_another": "Another moderator is reviewing the listing.",
    "listing_gone": "The listing was deleted.",
    "own_listing": "Moderators do not review their own listings.",
    "not_in_queue": "The listing is not in your review queue.",
    "stale_view": "What you saw of the listing is no longer true.",
    "transition_not_allowed": "The status change is not allowed from here.",
    "nothing_to_undo": "There is no decision of yours on this listing to undo.",
    "undo_window_closed": "The decision is too old to undo.",
    "listing_moved_on": "The listing changed since the decision: it cannot be undone.",
    "appeal_not_allowed": "The listing cannot be appealed.",
    "appeal_empty": "An appeal needs a message.",
    "not_rejected": "Only a rejected listing can be appealed.",
    "already_appealed": "The rejection has already been appealed.",
    "appeal_final": "The appeal was decided; that is final.",
    "already_active": "The model version is already the active one.",
    "model_files_refused": "The model version's files are missing or changed.",
    "too_many_endpoints": "The owner has the most webhook endpoints allowed.",
    "error": "Any other error.",
}


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object changed since you loaded it."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The upload is too large."
    default_code = "too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The service is unavailable; try again later."
    default_code = "unavailable"


class FieldError(exceptions.APIException):
    """An error about named fields with its own status code (413, 415)."""

    def __init__(self, *, status_code: int, code: str, fields: dict[str, list[str]]):
        self.status_code = status_code
        first = next(iter(fields.values()))[0]
        super().__init__(detail=first, code=code)
        self.fields = fields
        self.error_code = code


def _flatten(detail) -> list[str]:
    if isinstance(detail, dict):
        return [m for value in detail.values() for m in _flatten(value)]
    if isinstance(detail, list):
        return [m for value in detail for m in _flatten(value)]
    return [str(detail)]


def _fields(detail) -> dict[str, list[str]]:
    """Field name -> messages; nested names are joined with dots."""
    out: dict[str, list[str]] = {}

    def walk(prefix: str, value):
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            for index, inner in enumerate(value):
                walk(f"{prefix}.{index}", inner)
        else:
            out.setdefault(prefix, []).extend(_flatten(value))

    walk("", detail)
    return out


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"code": code, "message": message, "fields": fields or {}}


def exception_handler(exc, context):
    """DRF's handler, reshaped; anything DRF does not handle stays a 500."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig | TooManyFilesSent):
        exc = PayloadTooLarge(str(exc))
    elif isinstance(exc, SuspiciousOperation):  # e.g. too many form fields
        exc = exceptions.ParseError(str(exc))
    if not isinstance(exc, exceptions.APIException):
        return None

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))

    if isinstance(exc, FieldError):
        body = error_body(exc.error_code, str(exc.detail), exc.fields)
    elif isinstance(exc, exceptions.ValidationError):
        fields = _fields(exc.detail) if isinstance(exc.detail, dict) else {}
        general = fields.pop("non_field_errors", None)
        if general:
            message = " ".join(general)
        elif fields:
            name, messages = next(iter(fields.items()))
            message = f"Invalid input: {name}: {messages[0]}"
        else:
            message = " ".join(_flatten(exc.detail)) or "Invalid input."
        codes = set(_flatten(exc.get_codes()))
        body = error_body(
            "unknown_field" if "unknown_field" in codes else "invalid", message, fields
        )
    else:
        detail = exc.detail
        code = exc.get_codes() if hasattr(exc, "get_codes") else exc.default_code
        if not isinstance(code, str):
            code = exc.default_code
        if code not in ERROR_CODES:  # the schema promises one of these
            code = exc.default_code if exc.default_code in ERROR_CODES else "error"
        message = " ".join(_flatten(detail)) if not isinstance(detail, str) else detail
        body = error_body(code, message)

    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)
