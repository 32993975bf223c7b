"""The request id and the one log line per request."""

from __future__ import annotations

import logging
import time

from django.utils.functional import empty

from listings.observability import new_request_id, request_id_var

request_log = logging.getLogger("clipmatch.request")


class RequestIdMiddleware:
    """Takes the client's X-Request-Id (or makes one), answers with it, and logs the
    request once it is answered, with the same id as every line logged meanwhile."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = new_request_id(request.headers.get("X-Request-Id"))
        request.request_id = request_id
        token = request_id_var.set(request_id)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response["X-Request-Id"] = request_id
            request_log.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                    "user_id": _user_id(request),
                },
            )
            return response
        finally:
            request_id_var.reset(token)


def _user_id(request):
    # Only a user something already looked up: a log line costs no session query.
    user = getattr(request, "user", None)
    if user is None or getattr(user, "_wrapped", None) is empty:
        return None
    return user.pk
