"""Webhooks: registration, one signed delivery per decision, retries, no duplicates."""

import hashlib
import hmac
import json
import socket
import threading
import time
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import close_old_connections
from django.utils import timezone
from django_q.models import Schedule

from listings.services.scoring import listing_score
from listings.services.transitions import listing_transition
from listings.tests.factories import ListingImageFactory
from listings.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from listings.webhooks.services import (
    DELIVER_TASK,
    WebhookURLRefused,
    webhook_deliver,
    webhook_endpoint_create,
    webhook_url_check,
    webhooks_dispatch_due,
)

SECRET = "a-long-shared-secret-1234"


def deliveries_sent(queued_tasks) -> list[int]:
    """The ids of the deliveries handed to the queue, in order."""
    return [task[1] for task in queued_tasks if task[0] == DELIVER_TASK]


class Receiver:
    """A real HTTP server on loopback that answers with the given status codes."""

    def __init__(self, codes):
        self.codes = list(codes)
        self.requests = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code == 200 else b"boom")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def verify(headers: dict, body: bytes, secret: str = SECRET) -> bool:
    parts = dict(p.split("=", 1) for p in headers["X-Clipmatch-Signature"].split(","))
    expected = hmac.new(
        secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


@pytest.fixture
def private_hosts_allowed(settings):
    settings.CLIPMATCH_API = {
        **settings.CLIPMATCH_API,
        "WEBHOOK_ALLOW_PRIVATE_HOSTS": True,
        "WEBHOOK_RETRY_BACKOFF": 1,
    }


@pytest.mark.django_db
def test_registering_refuses_private_addresses_by_default(seller_api):
    response = seller_api.post(
        "/api/v1/webhooks/",
        {"url": "http://127.0.0.1:9/hook", "secret": SECRET},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "url": ["The URL must not point at a private address."]
    }
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.django_db
def test_the_secret_is_write_only_and_endpoints_are_private_to_their_owner(
    seller_api, other_seller_api, private_hosts_allowed
):
    created = seller_api.post(
        "/api/v1/webhooks/",
        {"url": "http://127.0.0.1:9/hook", "secret": SECRET},
        format="json",
    )
    endpoint_id = created.json()["id"]

    assert created.status_code == 201
    assert "secret" not in created.json()
    assert created.json()["events"] == []
    assert WebhookEndpoint.objects.get().secret == SECRET
    assert other_seller_api.get(f"/api/v1/webhooks/{endpoint_id}/").status_code == 404
    assert other_seller_api.get("/api/v1/webhooks/").json()["results"] == []
    assert other_seller_api.delete(f"/api/v1/webhooks/{endpoint_id}/").status_code == (
        404
    )
    assert seller_api.delete(f"/api/v1/webhooks/{endpoint_id}/").status_code == 204
    assert WebhookEndpoint.objects.get().active is False


@pytest.mark.django_db
def test_a_verdict_records_one_delivery_for_the_seller_and_for_moderators_only(
    seller,
    other_seller,
    moderator,
    tiny_model,
    queued_tasks,
    private_hosts_allowed,
    django_capture_on_commit_callbacks,
):
    mine = webhook_endpoint_create(
        owner=seller, url="http://127.0.0.1:9/a", secret=SECRET
    )
    webhook_endpoint_create(
        owner=other_seller, url="http://127.0.0.1:9/b", secret=SECRET
    )
    mod = webhook_endpoint_create(
        owner=moderator, url="http://127.0.0.1:9/c", secret=SECRET
    )
    listing = ListingImageFactory(listing__seller=seller).listing

    with django_capture_on_commit_callbacks(execute=True):
        listing_score(listing_id=listing.pk)

    deliveries = WebhookDelivery.objects.order_by("endpoint_id")
    assert [d.endpoint for d in deliveries] == [mine, mod]
    assert sorted(deliveries_sent(queued_tasks)) == sorted(d.pk for d in deliveries)
    payload = deliveries[0].payload
    assert payload["event"] == "listing.verdict"
    assert payload["listing"]["id"] == listing.pk
    assert payload["listing"]["status"] == "passed"
    assert payload["decision"]["from_status"] == "pending"
    assert payload["decision"]["to_status"] == "passed"
    assert payload["decision"]["reason_code"] == "scored_pass"
    assert payload["decision"]["actor"] == "system"


@pytest.mark.django_db
def test_system_routing_is_a_verdict_and_a_moderators_call_a_decision(
    seller, moderator, queued_tasks, private_hosts_allowed
):
    listing = ListingImageFactory(listing__seller=seller).listing
    webhook_endpoint_create(owner=seller, url="http://127.0.0.1:9/a", secret=SECRET)
    back_office = webhook_endpoint_create(
        owner=moderator, url="http://127.0.0.1:9/c", secret=SECRET
    )

    listing_transition(listing=listing, to_status="review", reason_code="scored_review")
    listing_transition(
        listing=listing,
        to_status="rejected",
        actor=moderator,
        reason_code="mismatch",
        reason="Same photo as listing 12; a reseller?",
        seller_message="The photo shows a mug.",
    )
    listing_transition(listing=listing, to_status="pending", reason_code="content")

    sellers = WebhookDelivery.objects.exclude(endpoint=back_office).order_by("id")
    verdict, decision = sellers
    assert verdict.event == "listing.verdict"
    assert verdict.payload["decision"]["to_status"] == "review"
    assert decision.event == "listing.decision"
    # The seller learns that a moderator decided, never which one.
    assert decision.payload["decision"]["actor"] == "moderator"
    assert decision.payload["decision"]["to_status"] == "rejected"
    assert decision.payload["decision"]["message"] == "The photo shows a mug."
    moderators = WebhookDelivery.objects.filter(
        endpoint=back_office, event="listing.decision"
    ).get()
    assert moderators.payload["decision"]["actor"] == "mo"
    # The internal note is in no payload, the back office's included.
    for delivery in WebhookDelivery.objects.all():
        assert "reseller" not in json.dumps(delivery.payload)


@pytest.mark.django_db
def test_a_delivery_is_signed_retried_after_a_failure_and_never_sent_twice(
    seller,
    tiny_model,
    queued,
    private_hosts_allowed,
    sync_queue,
    django_capture_on_commit_callbacks,
):
    listing = ListingImageFactory(listing__seller=seller).listing
    with Receiver([500, 200]) as receiver:
        webhook_endpoint_create(owner=seller, url=receiver.url, secret=SECRET)

        with django_capture_on_commit_callbacks(execute=True):
            listing_score(listing_id=listing.pk)  # the queue sends it inline: 500

        delivery = WebhookDelivery.objects.get()
        first_status = delivery.status
        retry = Schedule.objects.get(name=f"webhook-{delivery.pk}-send")
        early = webhook_deliver(delivery_id=delivery.pk)  # not due yet
        later = delivery.next_attempt_at
        second = webhook_deliver(delivery_id=delivery.pk, now=later)
        again = webhook_deliver(delivery_id=delivery.pk, now=later)
        redispatched = webhooks_dispatch_due(now=later)

    delivery.refresh_from_db()
    (h1, b1), (h2, b2) = receiver.requests
    assert first_status == "pending"
    assert retry.next_run == later
    assert retry.func == "listings.webhooks.tasks.deliver_webhook"
    assert not Schedule.objects.filter(name=retry.name).exists()  # done with
    assert early.outcome == "skipped_pending"
    assert second.outcome == "delivered"
    assert again.outcome == "skipped_delivered"
    assert redispatched == []
    assert len(receiver.requests) == 2
    assert verify(h1, b1) and verify(h2, b2)
    assert not verify(h2, b2, secret="another-secret-entirely")
    assert b1 == b2
    assert (
        h1["X-Clipmatch-Delivery"]
        == h2["X-Clipmatch-Delivery"]
        == str(delivery.event_id)
    )
    assert json.loads(b2)["listing"]["id"] == listing.pk
    assert delivery.status == "delivered"
    assert delivery.attempts == 2
    assert list(
        WebhookAttempt.objects.filter(delivery=delivery).values_list(
            "number", "status_code", "error"
        )
    ) == [(1, 500, "The receiver answered HTTP 500."), (2, 200, "")]


@pytest.mark.django_db
def test_a_delivery_gives_up_after_the_last_attempt(
    seller, private_hosts_allowed, settings, queued_tasks
):
    settings.CLIPMATCH_API = {**settings.CLIPMATCH_API, "WEBHOOK_MAX_ATTEMPTS": 2}
    listing = ListingImageFactory(listing__seller=seller).listing
    with Receiver([503, 503, 503]) as receiver:
        webhook_endpoint_create(owner=seller, url=receiver.url, secret=SECRET)
        listing_transition(listing=listing, to_status="held", reason_code="test")
        delivery = WebhookDelivery.objects.get()
        outcomes = []
        for _ in range(3):
            delivery.refresh_from_db()
            outcomes.append(
                webhook_deliver(
                    delivery_id=delivery.pk, now=delivery.next_attempt_at
                ).outcome
            )

    delivery.refresh_from_db()
    assert outcomes == ["retry", "failed", "skipped_failed"]
    assert len(receiver.requests) == 2
    assert delivery.status == "failed"
    assert delivery.last_error == "The receiver answered HTTP 503."


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_retries_after_a_500_and_does_not_duplicate(
    seller,
    tiny_model,
    private_hosts_allowed,
    worker_env,
    qcluster_env_for_webhooks,
    qcluster,
    webhook_qcluster,
):
    with Receiver([500, 200]) as receiver:
        webhook_endpoint_create(owner=seller, url=receiver.url, secret=SECRET)
        listing = ListingImageFactory(listing__seller=seller).listing  # worker scores

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            close_old_connections()
            if WebhookDelivery.objects.filter(status="delivered").exists():
                break
            time.sleep(0.2)
        time.sleep(2)  # any duplicate would arrive now
        requests = list(receiver.requests)

    delivery = WebhookDelivery.objects.get()
    log = webhook_qcluster.log_path.read_text()[-3000:]
    assert delivery.status == "delivered", log
    assert len(requests) == 2, log
    assert all(verify(h, b) for h, b in requests)
    assert json.loads(requests[1][1])["listing"]["id"] == listing.pk
    assert list(
        WebhookAttempt.objects.filter(delivery=delivery).values_list(
            "number", "status_code"
        )
    ) == [(1, 500), (2, 200)]
    assert delivery.delivered_at <= timezone.now()


@pytest.fixture
def qcluster_env_for_webhooks(worker_env):
    worker_env["CLIPMATCH_WEBHOOK_ALLOW_PRIVATE_HOSTS"] = "1"
    worker_env["CLIPMATCH_WEBHOOK_RETRY_BACKOFF"] = "1"
    return worker_env


@pytest.mark.django_db
def test_an_owner_lists_the_deliveries_of_an_endpoint(
    seller_api, seller, other_seller_api, private_hosts_allowed, queued_tasks
):
    endpoint = webhook_endpoint_create(
        owner=seller, url="http://127.0.0.1:9/a", secret=SECRET
    )
    listing = ListingImageFactory(listing__seller=seller).listing
    listing_transition(listing=listing, to_status="held", reason_code="scored_hold")
    delivery = WebhookDelivery.objects.get()
    path = f"/api/v1/webhooks/{endpoint.pk}/deliveries/"

    rows = seller_api.get(path).json()["results"]

    assert [(r["event_id"], r["event"], r["status"]) for r in rows] == [
        (str(delivery.event_id), "listing.verdict", "pending")
    ]
    assert other_seller_api.get(path).status_code == 404


@pytest.mark.django_db
def test_the_admin_shows_each_attempt_and_sends_again_on_request(
    client,
    seller,
    private_hosts_allowed,
    queued_tasks,
    django_capture_on_commit_callbacks,
):
    from django.contrib.auth import get_user_model

    listing = ListingImageFactory(listing__seller=seller).listing
    with Receiver([500, 503]) as receiver:
        webhook_endpoint_create(owner=seller, url=receiver.url, secret=SECRET)
        listing_transition(listing=listing, to_status="held", reason_code="scored_hold")
        delivery = WebhookDelivery.objects.get()
        webhook_deliver(delivery_id=delivery.pk)
    boss = get_user_model().objects.create_superuser("boss", "b@example.com", "pw")
    client.force_login(boss)

    page = client.get(f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/webhooks/webhookdelivery/",
            {"action": "retry_now", "_selected_action": [delivery.pk]},
        )

    html = page.content.decode()
    assert page.status_code == 200
    assert "The receiver answered HTTP 500." in html
    assert "boom" in html
    assert deliveries_sent(queued_tasks) == [delivery.pk]


@pytest.mark.django_db
def test_a_url_that_turned_private_is_refused_at_delivery_and_not_called(
    seller, settings, monkeypatch, queued_tasks
):
    settings.CLIPMATCH_API = {
        **settings.CLIPMATCH_API,
        "WEBHOOK_ALLOW_PRIVATE_HOSTS": False,
    }
    # A name, so registration (which does no DNS) lets it through; it resolves to
    # loopback when the delivery is sent.
    webhook_endpoint_create(
        owner=seller, url="http://localtest.invalid/", secret=SECRET
    )
    monkeypatch.setattr(
        "listings.webhooks.services.socket.getaddrinfo",
        lambda *a, **k: [(2, 1, 6, "", ("127.0.0.1", 80))],
    )
    listing = ListingImageFactory(listing__seller=seller).listing
    with Receiver([200]) as receiver:
        listing_transition(listing=listing, to_status="held", reason_code="scored_hold")
        outcome = webhook_deliver(delivery_id=WebhookDelivery.objects.get().pk)

    delivery = WebhookDelivery.objects.get()
    assert outcome.outcome == "failed"  # refused now, refused on every retry
    assert outcome.detail == "Given up: The URL must not point at a private address."
    assert delivery.status == "failed"
    assert delivery.last_error == outcome.detail
    assert not Schedule.objects.filter(name=f"webhook-{delivery.pk}-send").exists()
    assert receiver.requests == []


@pytest.mark.django_db
def test_only_http_urls_can_be_registered(seller_api):
    response = seller_api.post(
        "/api/v1/webhooks/",
        {"url": "ftp://example.com/hook", "secret": SECRET},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "url": ["The URL must be http:// or https:// with a host."]
    }


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
        "http://[::127.0.0.1]/hook",  # IPv4-compatible
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
        "http://[::ffff:0:10.0.0.1]/hook",  # SIIT (IPv4-translated) of 10.0.0.1
        "http://[2002:a00:1::1]/hook",  # 6to4 of 10.0.0.1
        "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "http://[64:ff9b:1::a00:1]/hook",  # local-use NAT64
        "http://[64:ff9b:1:2::5db8:d822]/hook",  # local-use NAT64, public inside
        "http://[fec0::1]/hook",  # site-local
    ],
)
def test_loopback_hidden_in_an_ipv6_address_is_refused(url):
    with pytest.raises(WebhookURLRefused, match="private address"):
        webhook_url_check(url, resolve=False)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://[2606:4700::1111]/hook", "2606:4700::1111"),
        ("http://[2002:5db8:d822::1]/hook", "2002:5db8:d822::1"),  # 6to4, public
        ("http://[64:ff9b::5db8:d822]/hook", "64:ff9b::5db8:d822"),  # NAT64, public
        ("http://93.184.216.34/hook", "93.184.216.34"),
    ],
)
def test_public_addresses_in_any_form_are_allowed(url, address):
    assert webhook_url_check(url, resolve=False) == address


def test_the_request_goes_to_the_checked_address_not_a_second_lookup(monkeypatch):
    """DNS rebinding: public for the check, loopback a moment later. The
    connection must go to the address that was checked."""
    from listings.webhooks.services import _opener

    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1"])
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **kw: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))
        ],
    )
    dialled = []

    def create_connection(address, *args, **kwargs):
        dialled.append(address)
        raise ConnectionRefusedError("not on this network")

    monkeypatch.setattr(socket, "create_connection", create_connection)

    checked = webhook_url_check("http://rebind.example:8080/hook", resolve=True)
    with pytest.raises(urllib.error.URLError):
        _opener(checked).open("http://rebind.example:8080/hook", timeout=1)

    assert checked == "93.184.216.34"
    assert dialled == [("93.184.216.34", 8080)]
