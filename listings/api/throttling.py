"""RateLimit-Limit, -Remaining and -Reset on every throttled answer, successes
included, so that a client can slow down before it is refused (the IETF
RateLimit header fields draft). The throttles are DRF's own; each notes what it
saw, and the tightest one is reported."""

from __future__ import annotations

from rest_framework import throttling


class _Reporting:
    def allow_request(self, request, view):
        allowed = super().allow_request(request, view)
        history = getattr(self, "history", None)
        applies = getattr(self, "rate", None) and getattr(self, "key", None)
        if not applies or history is None:
            return allowed  # this throttle does not apply to the request
        remaining = max(0, self.num_requests - len(history))
        reset = self.duration - (self.now - history[-1]) if history else 0
        seen = (self.num_requests, remaining, max(0, int(reset + 0.999)))
        django_request = request._request
        current = getattr(django_request, "rate_limit", None)
        if current is None or seen[1] < current[1]:
            django_request.rate_limit = seen
        return allowed


class AnonRateThrottle(_Reporting, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(_Reporting, throttling.UserRateThrottle):
    pass


class ScopedRateThrottle(_Reporting, throttling.ScopedRateThrottle):
    pass


class RateLimitHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        seen = getattr(request, "rate_limit", None)
        if seen is not None:
            limit, remaining, reset = seen
            response["RateLimit-Limit"] = str(limit)
            response["RateLimit-Remaining"] = str(remaining)
            response["RateLimit-Reset"] = str(reset)
        return response
