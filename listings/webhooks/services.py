"""Writes for webhooks: registering endpoints, recording events, sending them."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from clipmatch import conf
from listings.roles import MODERATORS, SENIOR_MODERATORS, actor_as_seen_by
from listings.services import queueing
from listings.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)
Event = WebhookEndpoint.Event
Delivery = WebhookDelivery.Status
DELIVER_TASK = "listings.webhooks.tasks.deliver_webhook"
DISPATCHER = "clipmatch: dispatch due webhooks"
SIGNATURE_HEADER = "X-Clipmatch-Signature"
SYSTEM_VERDICTS = {"passed", "review", "held"}


# A delivery handed to the queue but never claimed for this long counts as lost (a
# Redis restart): the dispatcher queues it again. Well above any backlog the webhook
# queue clears, so that a delivery waiting its turn is not queued twice.
HANDOFF_LOST_AFTER = timedelta(hours=1)


class WebhookURLRefused(ValueError):
    """A webhook URL that must not be called; the message says why. `lasting`
    when calling again cannot help (a private address), not when a lookup failed."""

    def __init__(self, message: str, *, lasting: bool = True):
        super().__init__(message)
        self.lasting = lasting


class WebhookEndpointLimit(ValueError):
    """The owner has as many active endpoints as CLIPMATCH_WEBHOOK_MAX_ENDPOINTS."""


# IPv6 forms that carry an IPv4 address in their last 32 bits: NAT64 (RFC 6052)
# and SIIT's IPv4-translated ::ffff:0:a.b.c.d (RFC 2765).
EMBEDS_IPV4_LOW = [
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("::ffff:0:0:0/96"),
]
# Never a public destination, whatever they embed: local-use NAT64 (RFC 8215) goes
# through a translator inside this network; site-local (fec0::/10, deprecated) is
# a private range that `is_global` still calls global.
NEVER_PUBLIC = [
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("fec0::/10"),
]


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Global, and so is any IPv4 address embedded in an IPv6 one (mapped,
    compatible, translated, NAT64 or 6to4), which `is_global` alone lets through."""
    if not address.is_global:
        return False
    if address.version == 6:
        if any(address in network for network in NEVER_PUBLIC):
            return False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and (
            int(address) >> 32 == 0
            or any(address in network for network in EMBEDS_IPV4_LOW)
        ):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return embedded.is_global
    return True


def webhook_url_check(url: str, *, resolve: bool) -> str | None:
    """Refuse URLs that are not http(s) or that point inside our own network.

    With `resolve`, the host's addresses are looked up (at delivery time) and the
    checked address to connect to is returned, so that a second lookup (DNS
    rebinding) cannot lead the request elsewhere; without, only a literal address
    or "localhost" is refused (at registration, no DNS). None when private hosts
    are allowed or nothing was resolved: then the host is connected to as named.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookURLRefused("The URL must be http:// or https:// with a host.")
    if conf.get("WEBHOOK_ALLOW_PRIVATE_HOSTS"):
        return None
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost"):
        raise WebhookURLRefused("The URL must not point at a private address.")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if not resolve:
            return None
        try:
            infos = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise WebhookURLRefused(
                f"The host {host} cannot be resolved.", lasting=False
            ) from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if not _is_public(address):
            raise WebhookURLRefused("The URL must not point at a private address.")
    return str(addresses[0])


def webhook_endpoint_create(
    *, owner, url: str, secret: str, events: list[str] | None = None
) -> WebhookEndpoint:
    """Register a URL for an owner's events; raises WebhookURLRefused, or
    WebhookEndpointLimit when the owner already has the most allowed."""
    webhook_url_check(url, resolve=False)
    unknown = set(events or []) - set(Event.values)
    if unknown:
        raise ValueError(f"Unknown events: {', '.join(sorted(unknown))}.")
    limit = conf.get("WEBHOOK_MAX_ENDPOINTS")
    with transaction.atomic():
        # The owner's row is the lock: two registrations at once count one by one.
        type(owner).objects.select_for_update().filter(pk=owner.pk).first()
        if WebhookEndpoint.objects.filter(owner=owner, active=True).count() >= limit:
            raise WebhookEndpointLimit(
                f"You have {limit} active webhook endpoints, the most allowed; "
                "delete one first."
            )
        return WebhookEndpoint.objects.create(
            owner=owner, url=url, secret=secret, events=list(events or [])
        )


def webhook_endpoint_deactivate(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Stop sending to an endpoint; its deliveries stay for the record."""
    endpoint.active = False
    endpoint.save(update_fields=["active"])
    return endpoint


def _event_for(decision) -> str | None:
    """A person's decision, or the system routing a listing (scored or re-scored);
    a listing going back to pending, deleted or appealed by its seller is not."""
    if decision.reason_code in ("deleted", "appeal"):
        return None
    if decision.actor_id is not None:
        return Event.DECISION
    if decision.to_status in SYSTEM_VERDICTS:
        return Event.VERDICT
    return None


def _payload(decision, event: str, event_id, viewer) -> dict:
    listing = decision.listing
    return {
        "id": str(event_id),
        "event": event,
        "created_at": decision.created_at.isoformat(),
        "listing": {
            "id": listing.pk,
            "title": listing.title,
            "status": decision.to_status,
            "seller_id": listing.seller_id,
        },
        "decision": {
            "id": decision.pk,
            "from_status": decision.from_status,
            "to_status": decision.to_status,
            "reason_code": decision.reason_code,
            # What the seller is told; a moderator's internal note never leaves.
            "message": decision.seller_message,
            "undoes": decision.undoes_id,
            "actor": actor_as_seen_by(decision, viewer),
            "model_version": decision.model_version,
            "score": decision.score,
        },
        "photos": _photo_signals(decision),
    }


def _photo_signals(decision) -> list[dict]:
    """Per image of the listing's score: its quality findings and the other
    seller's listing it was reused from, if any."""
    score = decision.listing.score
    rows = score.images if score is not None else []
    return [
        {
            "index": row["index"],
            "quality": row.get("quality", []),
            "reuse": row.get("reuse"),
        }
        for row in rows
    ]


def webhooks_record_decision(*, decision) -> list[int]:
    """Record one delivery per interested endpoint, in the caller's transaction,
    and queue each after commit. Returns the delivery ids."""
    event = _event_for(decision)
    listing = decision.listing
    if event is None or listing.deleted_at is not None:
        return []
    endpoints = (
        WebhookEndpoint.objects.filter(active=True)
        .filter(
            Q(owner_id=listing.seller_id)
            | Q(owner__groups__name__in=[MODERATORS, SENIOR_MODERATORS])
        )
        .distinct()
    )
    ids = []
    now = timezone.now()
    for endpoint in endpoints:
        if not endpoint.wants(event):
            continue
        delivery = WebhookDelivery(
            endpoint=endpoint,
            decision=decision,
            event=event,
            next_attempt_at=now,
            queued_at=now,
        )
        # The seller's endpoint never learns a moderator's name.
        delivery.payload = _payload(decision, event, delivery.event_id, endpoint.owner)
        delivery.save()
        ids.append(delivery.pk)
        queueing.after_commit(_queue, delivery.pk)
    return ids


def _queue(delivery_id: int) -> None:
    """On the webhook queue, which only `manage.py qcluster_webhooks` serves."""
    try:
        queueing.queue_task(
            DELIVER_TASK,
            delivery_id,
            task_name=f"webhook-{delivery_id}",
            cluster=conf.get("WEBHOOK_QUEUE"),
        )
    except Exception:
        # Not queued after all: the dispatcher's next pass queues it.
        WebhookDelivery.objects.filter(pk=delivery_id).update(queued_at=None)
        raise


def webhook_sign(*, secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def webhook_body(delivery: WebhookDelivery) -> bytes:
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect could lead a checked public URL to a private address.
    def redirect_request(self, *args, **kwargs):
        return None


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever DNS says now; the Host
    header still names the URL's host."""

    def __init__(self, *args, address: str, **kwargs):
        super().__init__(*args, **kwargs)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection(
            (self._address, self.port), self.timeout, self.source_address
        )


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As above, with TLS verified against the URL's host name (SNI too)."""

    def __init__(self, *args, address: str, **kwargs):
        super().__init__(*args, **kwargs)
        self._address = address

    def connect(self):
        sock = socket.create_connection(
            (self._address, self.port), self.timeout, self.source_address
        )
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _opener(address: str | None) -> urllib.request.OpenerDirector:
    handlers: list = [urllib.request.ProxyHandler({}), _NoRedirects]
    if address is not None:

        class Pinned(urllib.request.HTTPHandler):
            def http_open(self, req):
                return self.do_open(
                    partial(_PinnedHTTPConnection, address=address), req
                )

        class PinnedTLS(urllib.request.HTTPSHandler):
            def https_open(self, req):
                return self.do_open(
                    partial(_PinnedHTTPSConnection, address=address),
                    req,
                    context=self._context,
                )

        handlers += [Pinned, PinnedTLS]
    return urllib.request.build_opener(*handlers)


@dataclass
class DeliveryOutcome:
    """What one run of the delivery task did."""

    delivery_id: int
    outcome: str
    status_code: int | None = None
    detail: str = ""


def webhook_deliver(
    *, delivery_id: int, now: datetime | None = None
) -> DeliveryOutcome:
    """Send one delivery if it is due and nobody else is sending it; safe to repeat.

    The claim is one conditional UPDATE, so two workers never both send; no lock is
    held during the HTTP call. A worker that dies while sending leaves a claim that
    goes stale and is picked up again by the dispatcher.
    """
    now = now or timezone.now()
    stale = now - timedelta(seconds=conf.get("WEBHOOK_SENDING_STALE_AFTER"))
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id)
        .filter(
            Q(status=Delivery.PENDING, next_attempt_at__lte=now)
            | Q(status=Delivery.SENDING, claimed_at__lt=stale)
        )
        .update(status=Delivery.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    )
    delivery = (
        WebhookDelivery.objects.select_related("endpoint")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None:
        return DeliveryOutcome(delivery_id, "missing")
    if not claimed:
        return DeliveryOutcome(delivery_id, f"skipped_{delivery.status}")
    endpoint = delivery.endpoint
    started = time.monotonic()
    status_code, error, excerpt = None, "", ""
    give_up = False
    if not endpoint.active:
        error, give_up = "Given up: the endpoint was deactivated.", True
    else:
        try:
            address = webhook_url_check(endpoint.url, resolve=True)
            status_code, excerpt = _post(delivery, address)
            if not 200 <= status_code < 300:
                error = f"The receiver answered HTTP {status_code}."
        except WebhookURLRefused as exc:
            # A URL refused now is refused on every retry: say so and stop.
            give_up = exc.lasting
            error = f"Given up: {exc}" if give_up else str(exc)
        except (OSError, urllib.error.URLError) as exc:
            error = f"{exc.__class__.__name__}: {exc}"
    return _finish(delivery, now, started, status_code, error, excerpt, give_up)


def _post(delivery: WebhookDelivery, address: str | None) -> tuple[int, str]:
    body = webhook_body(delivery)
    signature = webhook_sign(
        secret=delivery.endpoint.secret, timestamp=int(time.time()), body=body
    )
    request = urllib.request.Request(
        delivery.endpoint.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "clipmatch-webhooks/1",
            "X-Clipmatch-Event": delivery.event,
            "X-Clipmatch-Delivery": str(delivery.event_id),
            SIGNATURE_HEADER: signature,
        },
    )
    try:
        opener = _opener(address)
        with opener.open(request, timeout=conf.get("WEBHOOK_TIMEOUT")) as response:
            return response.status, response.read(500).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:  # 3xx (not followed), 4xx, 5xx
        return exc.code, exc.read(500).decode("utf-8", "replace")


def _finish(
    delivery: WebhookDelivery,
    now: datetime,
    started: float,
    status_code: int | None,
    error: str,
    excerpt: str,
    give_up: bool = False,
) -> DeliveryOutcome:
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            started_at=now,
            duration_ms=int((time.monotonic() - started) * 1000),
            status_code=status_code,
            error=error,
            response_excerpt=excerpt[:500],
        )
        if not error:
            delivery.status = Delivery.DELIVERED
            delivery.delivered_at = timezone.now()
            delivery.last_error = ""
            _drop_retry(delivery)
            outcome = "delivered"
        elif give_up or delivery.attempts >= conf.get("WEBHOOK_MAX_ATTEMPTS"):
            delivery.status = Delivery.FAILED
            delivery.last_error = error
            _drop_retry(delivery)
            outcome = "failed"
        else:
            backoff = conf.get("WEBHOOK_RETRY_BACKOFF") * 2 ** (delivery.attempts - 1)
            delivery.status = Delivery.PENDING
            delivery.next_attempt_at = now + timedelta(seconds=backoff)
            delivery.last_error = error
            # Its one-off schedule hands it to the queue then: nobody else need.
            delivery.queued_at = delivery.next_attempt_at
            _schedule_retry(delivery)
            outcome = "retry"
        delivery.claimed_at = None
        delivery.save(
            update_fields=[
                "status",
                "delivered_at",
                "last_error",
                "next_attempt_at",
                "queued_at",
                "claimed_at",
            ]
        )
    if error:
        logger.warning("Webhook delivery %s: %s", delivery.pk, error)
    return DeliveryOutcome(delivery.pk, outcome, status_code, error)


def _schedule_retry(delivery: WebhookDelivery) -> None:
    # A one-off django-q2 schedule, written in this transaction; the dispatcher
    # below catches any retry whose schedule or task is lost.
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=_retry_name(delivery),
        defaults={
            "func": DELIVER_TASK,
            "args": repr((delivery.pk,)),
            "schedule_type": Schedule.ONCE,
            "repeats": 1,
            "next_run": delivery.next_attempt_at,
            "cluster": conf.get("WEBHOOK_QUEUE"),
        },
    )


def _drop_retry(delivery: WebhookDelivery) -> None:
    # Done with: its one-off schedule, if it had one, is no longer needed.
    from django_q.models import Schedule

    Schedule.objects.filter(name=_retry_name(delivery)).delete()


def _retry_name(delivery: WebhookDelivery) -> str:
    return f"webhook-{delivery.pk}-retry"


def webhooks_dispatch_due(*, now: datetime | None = None, limit: int = 500) -> list:
    """Queue deliveries that are due and that nobody has queued (their task or
    schedule was lost, or queueing failed), or whose sender died; the safety net,
    which never queues a delivery that waits in the queue already. Sending twice is
    prevented by the claim; queueing twice, here."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=conf.get("WEBHOOK_SENDING_STALE_AFTER"))
    unhanded = Q(queued_at__isnull=True) | Q(queued_at__lt=now - HANDOFF_LOST_AFTER)
    lost_sender = Q(status=Delivery.SENDING, claimed_at__lt=stale) & (
        Q(queued_at__isnull=True) | Q(queued_at__lt=stale)
    )
    due = Q(status=Delivery.PENDING, next_attempt_at__lte=now) & unhanded | lost_sender
    ids = []
    candidates = WebhookDelivery.objects.filter(due).order_by("next_attempt_at", "pk")
    for delivery_id in candidates.values_list("pk", flat=True)[:limit]:
        # One conditional UPDATE each: of two dispatchers, one queues it.
        if WebhookDelivery.objects.filter(due, pk=delivery_id).update(queued_at=now):
            queueing.after_commit(_queue, delivery_id)
            ids.append(delivery_id)
    return ids


def webhook_retry_now(*, delivery: WebhookDelivery) -> bool:
    """From the admin: send a pending or failed delivery again at once."""
    updated = WebhookDelivery.objects.filter(
        pk=delivery.pk, status__in=[Delivery.PENDING, Delivery.FAILED]
    ).update(
        status=Delivery.PENDING,
        next_attempt_at=timezone.now(),
        queued_at=timezone.now(),
    )
    if updated:
        queueing.after_commit(_queue, delivery.pk)
    return bool(updated)


def webhook_schedules_ensure():
    """Create or update the dispatcher's django-q2 schedule; (schedule, created)."""
    from django_q.models import Schedule

    return Schedule.objects.update_or_create(
        name=DISPATCHER,
        defaults={
            "func": "listings.webhooks.tasks.dispatch_due_webhooks",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
            # Run by the webhook cluster, beside what it queues.
            "cluster": conf.get("WEBHOOK_QUEUE"),
        },
    )
