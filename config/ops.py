"""What probes and the metrics scraper ask: /healthz, /readyz and /metrics.

No login and no session (they are called every few seconds by machines), and no
detail an attacker could use: component names with ok or failing, nothing more.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from clipmatch import conf
from listings import health, metrics


@never_cache
@require_GET
def healthz(request):
    """The process is up and answering; it touches nothing else."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    """200 when the database, broker, cache and model files all answer, else 503."""
    results = health.readiness()
    ready = all(results.values())
    return JsonResponse(
        {
            "status": "ok" if ready else "unavailable",
            "checks": {name: "ok" if ok else "failing" for name, ok in results.items()},
        },
        status=200 if ready else 503,
    )


def _metrics_allowed(request) -> bool:
    token = conf.get("METRICS_TOKEN")
    if token:
        offered = request.headers.get("Authorization", "")
        if hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
            return True
    if conf.get("METRICS_ALLOW_PRIVATE"):
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        return address.is_private or address.is_loopback
    return False


@never_cache
@require_GET
def metrics_view(request):
    """Prometheus' text format; a 404 to anyone without the token or a private
    address, so that the endpoint's existence tells nothing."""
    if not _metrics_allowed(request):
        raise Http404()
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)
