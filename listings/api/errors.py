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
        body = error_body("invalid", message, fields)
    else:
        detail = exc.detail
        code = exc.get_codes() if hasattr(exc, "get_codes") else exc.default_code
        if not isinstance(code, str):
            code = exc.default_code
        message = " ".join(_flatten(detail)) if not isinstance(detail, str) else detail
        body = error_body(code, message)

    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)
