"""Webhooks never starve scoring: their own queue, a cap on endpoints, a dispatcher
that never queues a delivery twice, and refused URLs given up at once."""

import socket
import time
from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone

from conftest import wait_for
from listings.models import Listing
from listings.services import queueing
from listings.services.transitions import listing_transition
from listings.tests.factories import ListingImageFactory
from listings.webhooks.models import WebhookDelivery, WebhookEndpoint
from listings.webhooks.services import (
    DELIVER_TASK,
    HANDOFF_LOST_AFTER,
    WebhookEndpointLimit,
    webhook_deliver,
    webhook_endpoint_create,
    webhooks_dispatch_due,
)
from listings.webhooks.tests.test_webhooks import SECRET

DEAD = "http://127.0.0.1:9/hook"  # the discard port: nobody answers


@pytest.fixture
def handed(monkeypatch):
    """Every task handed to the queue, as (path, first argument, cluster)."""
    tasks = []

    def record(path, *args, task_name, cluster=None):
        tasks.append((path, args[0] if args else None, cluster))

    monkeypatch.setattr(queueing, "queue_task", record)
    return tasks


@pytest.fixture
def dispatch(django_capture_on_commit_callbacks):
    """One dispatcher pass whose queueing runs, as it would after its commit."""

    def run(now):
        with django_capture_on_commit_callbacks(execute=True):
            return webhooks_dispatch_due(now=now)

    return run


def _delivery(seller, django_capture_on_commit_callbacks):
    listing = ListingImageFactory(listing__seller=seller).listing
    with django_capture_on_commit_callbacks(execute=True):
        listing_transition(listing=listing, to_status="held", reason_code="test")
    return WebhookDelivery.objects.get(decision__listing=listing)


@pytest.mark.django_db
def test_deliveries_go_to_the_webhook_queue_never_the_scoring_one(
    seller, private_hosts_allowed, handed, django_capture_on_commit_callbacks
):
    webhook_endpoint_create(owner=seller, url=DEAD, secret=SECRET)

    delivery = _delivery(seller, django_capture_on_commit_callbacks)

    assert [t for t in handed if t[0] == DELIVER_TASK] == [
        (DELIVER_TASK, delivery.pk, "webhooks")
    ]
    assert not [t for t in handed if t[0] != DELIVER_TASK and t[2] == "webhooks"]


@pytest.mark.django_db
def test_an_owner_may_register_only_so_many_endpoints(
    seller, seller_api, private_hosts_allowed, settings
):
    settings.CLIPMATCH_API = {**settings.CLIPMATCH_API, "WEBHOOK_MAX_ENDPOINTS": 2}
    first = webhook_endpoint_create(owner=seller, url=DEAD, secret=SECRET)
    webhook_endpoint_create(owner=seller, url=DEAD, secret=SECRET)

    with pytest.raises(WebhookEndpointLimit) as refused:
        webhook_endpoint_create(owner=seller, url=DEAD, secret=SECRET)
    response = seller_api.post(
        "/api/v1/webhooks/", {"url": DEAD, "secret": SECRET}, format="json"
    )
    WebhookEndpoint.objects.filter(pk=first.pk).update(active=False)
    again = seller_api.post(
        "/api/v1/webhooks/", {"url": DEAD, "secret": SECRET}, format="json"
    )

    message = "You have 2 active webhook endpoints, the most allowed; delete one first."
    assert str(refused.value) == message
    assert response.status_code == 409
    assert response.json() == {
        "code": "too_many_endpoints",
        "message": message,
        "fields": {},
    }
    assert again.status_code == 201
    assert WebhookEndpoint.objects.filter(owner=seller, active=True).count() == 2


@pytest.mark.django_db
def test_the_dispatcher_never_queues_a_delivery_that_is_queued_already(
    seller, private_hosts_allowed, handed, django_capture_on_commit_callbacks, dispatch
):
    webhook_endpoint_create(owner=seller, url=DEAD, secret=SECRET)
    delivery = _delivery(seller, django_capture_on_commit_callbacks)
    handed.clear()
    now = timezone.now()

    passes = [dispatch(now + timedelta(minutes=m)) for m in (1, 2)]
    lost = dispatch(now + HANDOFF_LOST_AFTER + timedelta(minutes=1))
    after = dispatch(now + HANDOFF_LOST_AFTER + timedelta(minutes=2))

    assert passes == [[], []]
    assert lost == [delivery.pk]  # handed over an hour ago, never claimed: lost
    assert after == []
    assert handed == [(DELIVER_TASK, delivery.pk, "webhooks")]


@pytest.mark.django_db
def test_a_retry_is_left_to_its_schedule_and_a_lost_sender_is_queued_once(
    seller, private_hosts_allowed, handed, django_capture_on_commit_callbacks, dispatch
):
    webhook_endpoint_create(owner=seller, url=DEAD, secret=SECRET)
    delivery = _delivery(seller, django_capture_on_commit_callbacks)
    handed.clear()

    outcome = webhook_deliver(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    due = delivery.next_attempt_at
    at_retry = dispatch(due + timedelta(seconds=30))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="sending", claimed_at=due
    )
    dead_sender = [dispatch(due + timedelta(seconds=s)) for s in (200, 260)]

    assert outcome.outcome == "retry"
    assert delivery.queued_at == due
    assert at_retry == []
    assert dead_sender == [[delivery.pk], []]
    assert handed == [(DELIVER_TASK, delivery.pk, "webhooks")]


@pytest.mark.django_db(transaction=True)
def test_a_delivery_not_queued_for_a_broker_outage_is_dispatched_next_pass(
    seller, private_hosts_allowed, monkeypatch
):
    webhook_endpoint_create(owner=seller, url=DEAD, secret=SECRET)

    def refuse(*args, **kwargs):
        raise ConnectionError("Connection refused")

    monkeypatch.setattr(queueing, "queue_task", refuse)
    listing = ListingImageFactory(listing__seller=seller).listing
    listing_transition(listing=listing, to_status="held", reason_code="test")
    delivery = WebhookDelivery.objects.get()
    monkeypatch.undo()
    handed = []
    monkeypatch.setattr(
        queueing,
        "queue_task",
        lambda path, *args, task_name, cluster=None: handed.append(args[0]),
    )

    dispatched = webhooks_dispatch_due()

    assert delivery.queued_at is None
    assert dispatched == [delivery.pk]
    assert handed == [delivery.pk]


@pytest.mark.django_db
def test_a_deactivated_endpoints_delivery_is_given_up_with_the_reason(
    seller, private_hosts_allowed, handed, django_capture_on_commit_callbacks
):
    endpoint = webhook_endpoint_create(owner=seller, url=DEAD, secret=SECRET)
    delivery = _delivery(seller, django_capture_on_commit_callbacks)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)

    outcome = webhook_deliver(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (outcome.outcome, delivery.status, delivery.last_error) == (
        "failed",
        "failed",
        "Given up: the endpoint was deactivated.",
    )


@pytest.fixture
def webhook_queue_emptied():
    """Empty the webhook queue after the test (set up before the clusters, so torn
    down after they stop): on Redis it outlives the test's database, and the next
    test's webhook cluster would work through thousands of tasks first."""
    yield
    from django_q.brokers import get_broker

    get_broker("webhooks").purge_queue()


@pytest.fixture
def workers_may_call_loopback(worker_env):
    worker_env["CLIPMATCH_WEBHOOK_ALLOW_PRIVATE_HOSTS"] = "1"
    return worker_env


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_thousand_deliveries_to_a_dead_receiver_do_not_delay_scoring(
    webhook_queue_emptied,
    seller,
    tiny_model,
    private_hosts_allowed,
    workers_may_call_loopback,
    qcluster,
    webhook_qcluster,
):
    """The scoring cluster never sees the webhook queue: with 2,000 deliveries
    queued there for a receiver that never answers (each send waits out
    CLIPMATCH_WEBHOOK_TIMEOUT), a new listing is routed while nearly all of them
    still wait. Not a timed test: on a shared queue the listing would wait behind
    the 2,000 sends, far beyond the generous wait below; how long it took is
    printed for the reader."""
    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(4096)
    dead = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
    endpoint = webhook_endpoint_create(owner=seller, url=dead, secret=SECRET)
    decision = listing_transition(
        listing=ListingImageFactory(listing__seller=seller).listing,
        to_status="held",
        reason_code="test",
    )
    WebhookDelivery.objects.all().delete()
    now = timezone.now()
    endpoints = [endpoint] + [
        WebhookEndpoint.objects.create(owner=seller, url=dead, secret=SECRET)
        for _ in range(1999)
    ]
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            endpoint=e,
            decision=decision,
            event="listing.verdict",
            payload={},
            next_attempt_at=now,
        )
        for e in endpoints
    )
    webhooks_dispatch_due(limit=2000)
    # All 2,000 are queued: by this call, or by the webhook cluster's own
    # dispatcher schedule if it ran in the meantime (it did, once, on PostgreSQL).
    assert not WebhookDelivery.objects.filter(queued_at__isnull=True).exists()
    started = time.monotonic()

    listing = ListingImageFactory(listing__seller=seller).listing  # queued on commit

    wait_for(
        lambda: Listing.objects.get(pk=listing.pk).status != "pending",
        180,
        "the new listing to be routed",
        qcluster.log_path,
    )
    routed_after = time.monotonic() - started
    close_old_connections()
    waiting = WebhookDelivery.objects.filter(decision=decision, status="pending")
    pending = waiting.count()
    silent.close()
    print(f"routed after {routed_after:.1f} s with {pending} deliveries waiting")
    assert pending > 1900  # the webhook cluster is still working through them
