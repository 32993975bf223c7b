"""`Idempotency-Key` on the POSTs that create or decide: a client that retries
after a timeout gets the first answer back instead of a second listing.

The same key with the same request replays the stored answer; with another
request it is a 422; while the first is still running, a 409. Answers of 5xx and
requests that raised are not kept, so a retry runs again. Keys last
CLIPMATCH_API_IDEMPOTENCY_KEY_HOURS (a day); an hourly schedule deletes older ones
(listings.services.idempotency).
"""

from __future__ import annotations

import hashlib
import json
from functools import wraps

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.functional import lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, status
from rest_framework.response import Response

from listings.api.errors import Conflict
from listings.models import IdempotencyKey
from listings.services.idempotency import idempotency_kept_for

HEADER = "Idempotency-Key"


def _description() -> str:
    # Read when the schema is built, not at import.
    hours = int(idempotency_kept_for().total_seconds() // 3600)
    return (
        "Any unique string of up to 255 characters. Sent again with the same "
        "request, the first answer comes back (with `Idempotent-Replayed: true`); "
        f"with another request, a 422. Kept for {hours} hours."
    )


PARAMETER = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description=lazy(_description, str)(),
)


class KeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = (
        "This Idempotency-Key was used with another request; use a new key."
    )
    default_code = "idempotency_key_reused"


def _fingerprint(request) -> str:
    """What makes two requests the same: method, path, query, fields and the
    bytes of every uploaded file."""
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}\n".encode())
    query = sorted((k, request.query_params.getlist(k)) for k in request.query_params)
    digest.update(json.dumps(query).encode())
    data = request.data
    if hasattr(data, "getlist"):
        fields = {}
        for name in sorted(data.keys()):
            values = []
            for value in data.getlist(name):
                if hasattr(value, "chunks"):
                    file_digest = hashlib.sha256()
                    for chunk in value.chunks():
                        file_digest.update(chunk)
                    value.seek(0)
                    values.append(f"file:{file_digest.hexdigest()}")
                else:
                    values.append(str(value))
            fields[name] = values
        data = fields
    digest.update(json.dumps(data, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _claim(user, key: str, fingerprint: str) -> tuple[IdempotencyKey, bool]:
    """The stored record for the key, or a new running one (True)."""
    IdempotencyKey.objects.filter(
        user=user, key=key, created_at__lt=timezone.now() - idempotency_kept_for()
    ).delete()
    try:
        with transaction.atomic():
            return (
                IdempotencyKey.objects.create(
                    user=user, key=key, request_hash=fingerprint
                ),
                True,
            )
    except IntegrityError:
        return IdempotencyKey.objects.get(user=user, key=key), False


def idempotent(handler):
    """Wrap an APIView's post: the first answer to a key is kept and replayed."""

    @wraps(handler)
    def wrapped(view, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return handler(view, request, *args, **kwargs)
        if not 0 < len(key) <= 255:
            raise exceptions.ValidationError(
                {HEADER: ["Send from 1 to 255 characters."]}
            )
        fingerprint = _fingerprint(request)
        record, first = _claim(request.user, key, fingerprint)
        if not first:
            if record.request_hash != fingerprint:
                raise KeyReused()
            if record.status_code is None:
                raise Conflict(
                    "A request with this Idempotency-Key is still running; "
                    "retry in a moment.",
                    code="idempotency_key_in_use",
                )
            headers = {"Idempotent-Replayed": "true"}
            if record.location:
                headers["Location"] = record.location
            return Response(record.response, status=record.status_code, headers=headers)
        try:
            response = handler(view, request, *args, **kwargs)
        except BaseException:
            record.delete()
            raise
        if response.status_code >= 500:
            record.delete()
            return response
        record.status_code = response.status_code
        record.response = response.data
        record.location = response.get("Location", "")
        record.save(update_fields=["status_code", "response", "location"])
        return response

    return wrapped
