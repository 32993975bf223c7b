"""X-Request-Id on every answer: the client's own (if it is a sane token) or a
new one, so a report of a failed call can be matched to the server's logs."""

from __future__ import annotations

import re
import uuid

HEADER = "X-Request-Id"
SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get(HEADER, "")
        request.request_id = given if SANE.fullmatch(given) else uuid.uuid4().hex
        response = self.get_response(request)
        response[HEADER] = request.request_id
        return response
