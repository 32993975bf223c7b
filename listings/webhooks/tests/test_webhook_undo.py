"""A moderator's decision is sent only once its undo window has closed; one taken
back in time is never sent, nor is its undo; one already sent is followed by its
undo, to the endpoints that heard of it."""

from datetime import timedelta

import pytest
from django_q.models import Schedule

from listings.services.review import review_undo
from listings.tests.factories import queue_item
from listings.tests.test_review_services import decide
from listings.webhooks.models import WebhookDelivery
from listings.webhooks.services import (
    webhook_deliver,
    webhook_endpoint_create,
    webhook_retry_now,
    webhooks_dispatch_due,
)
from listings.webhooks.tests.test_webhooks import SECRET, Receiver, deliveries_sent

pytestmark = pytest.mark.django_db


@pytest.fixture
def item(seller):
    return queue_item(seller=seller, title_similarity=0.25)


def reject(item, moderator):
    return decide(item, moderator, "reject", reason_code="wrong_image")


def test_a_decision_is_due_only_when_its_undo_window_closes(
    item,
    seller,
    moderator,
    private_hosts_allowed,
    queued_tasks,
    django_capture_on_commit_callbacks,
):
    with Receiver([200]) as receiver:
        webhook_endpoint_create(owner=seller, url=receiver.url, secret=SECRET)
        with django_capture_on_commit_callbacks(execute=True):
            decision = reject(item, moderator)
        delivery = WebhookDelivery.objects.get(event="listing.decision")
        due = decision.created_at + timedelta(seconds=30)
        schedule = Schedule.objects.get(name=f"webhook-{delivery.pk}-send")
        early = webhook_deliver(delivery_id=delivery.pk, now=due - timedelta(seconds=1))
        dispatched_early = webhooks_dispatch_due(now=due - timedelta(seconds=1))
        # Handed to its schedule: the dispatcher queues it only if that is lost.
        dispatched_at_due = webhooks_dispatch_due(now=due)
        sent = webhook_deliver(delivery_id=delivery.pk, now=due)

    assert delivery.next_attempt_at == due
    assert delivery.queued_at == due
    assert (schedule.next_run, schedule.func, schedule.args) == (
        due,
        "listings.webhooks.tasks.deliver_webhook",
        f"({delivery.pk},)",
    )
    assert schedule.cluster == "webhooks"
    assert deliveries_sent(queued_tasks) == []  # not queued at the commit
    assert early.outcome == "skipped_pending"
    assert dispatched_early == dispatched_at_due == []
    assert sent.outcome == "delivered"
    assert len(receiver.requests) == 1
    assert not Schedule.objects.filter(name=schedule.name).exists()


def test_a_verdict_and_a_decision_without_an_undo_window_go_at_once(
    item,
    seller,
    moderator,
    settings,
    private_hosts_allowed,
    queued_tasks,
    django_capture_on_commit_callbacks,
):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "REVIEW_UNDO_SECONDS": 0}
    webhook_endpoint_create(owner=seller, url="http://127.0.0.1:9/a", secret=SECRET)

    with django_capture_on_commit_callbacks(execute=True):
        decision = reject(item, moderator)

    delivery = WebhookDelivery.objects.get(decision=decision)
    assert delivery.next_attempt_at <= decision.created_at + timedelta(seconds=1)
    assert deliveries_sent(queued_tasks) == [delivery.pk]
    assert not Schedule.objects.filter(name__startswith="webhook-").exists()


def test_an_undone_decision_is_never_sent_and_neither_is_its_undo(
    item,
    seller,
    moderator,
    private_hosts_allowed,
    queued_tasks,
    django_capture_on_commit_callbacks,
):
    with Receiver([200]) as receiver:
        webhook_endpoint_create(owner=seller, url=receiver.url, secret=SECRET)
        webhook_endpoint_create(
            owner=moderator, url=receiver.url + "/back-office", secret=SECRET
        )
        with django_capture_on_commit_callbacks(execute=True):
            decision = reject(item, moderator)
            undo = review_undo(decision_id=decision.pk, moderator=moderator)
        due = decision.created_at + timedelta(seconds=30)
        outcomes = [
            webhook_deliver(delivery_id=d.pk, now=due).outcome
            for d in WebhookDelivery.objects.order_by("pk")
        ]
        dispatched = webhooks_dispatch_due(now=due + timedelta(hours=2))

    cancelled = WebhookDelivery.objects.filter(decision=decision)
    assert [(d.status, d.last_error) for d in cancelled] == [
        ("cancelled", f"Cancelled: the decision was undone (decision {decision.pk}).")
    ] * 2
    assert not WebhookDelivery.objects.filter(decision=undo).exists()
    assert outcomes == ["skipped_cancelled", "skipped_cancelled"]
    assert dispatched == []
    assert not Schedule.objects.filter(name__startswith="webhook-").exists()
    assert deliveries_sent(queued_tasks) == []
    assert receiver.requests == []


def test_the_undo_of_a_decision_already_sent_goes_where_it_went(
    item,
    seller,
    moderator,
    private_hosts_allowed,
    queued_tasks,
    django_capture_on_commit_callbacks,
):
    with Receiver([200, 200]) as receiver:
        sellers = webhook_endpoint_create(owner=seller, url=receiver.url, secret=SECRET)
        back_office = webhook_endpoint_create(
            owner=moderator, url=receiver.url + "/back-office", secret=SECRET
        )
        decision = reject(item, moderator)
        told = WebhookDelivery.objects.get(decision=decision, endpoint=sellers)
        # "Send again now" in the admin sends it before the window closed.
        webhook_retry_now(delivery=told)
        webhook_deliver(delivery_id=told.pk)
        with django_capture_on_commit_callbacks(execute=True):
            undo = review_undo(decision_id=decision.pk, moderator=moderator)
        (undo_delivery,) = WebhookDelivery.objects.filter(decision=undo)
        sent = webhook_deliver(delivery_id=undo_delivery.pk)

    statuses = dict(
        WebhookDelivery.objects.filter(decision=decision).values_list(
            "endpoint_id", "status"
        )
    )
    assert statuses == {sellers.pk: "delivered", back_office.pk: "cancelled"}
    assert undo_delivery.endpoint == sellers
    assert deliveries_sent(queued_tasks)[-1] == undo_delivery.pk  # at once
    assert undo_delivery.payload["decision"]["undoes"] == decision.pk
    assert undo_delivery.payload["decision"]["reason_code"] == "undo"
    assert undo_delivery.payload["listing"]["status"] == "review"
    assert sent.outcome == "delivered"
    assert len(receiver.requests) == 2
