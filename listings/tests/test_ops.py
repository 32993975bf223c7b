"""Health, readiness, metrics, request ids and the photos behind a login."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from listings import health, metrics, observability
from listings.tests.conftest import metric_sample
from listings.tests.factories import ListingImageFactory, queue_item


@pytest.fixture
def metrics_token(settings):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "METRICS_TOKEN": "s3cret"}
    return "s3cret"


def _scrape(client, token="s3cret", **extra) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}", **extra)
    assert response.status_code == 200
    return response.content.decode()


# --- /healthz and /readyz ---------------------------------------------------------


def test_healthz_answers_without_a_login_and_without_the_database(
    client, db, django_assert_num_queries
):
    with django_assert_num_queries(0):
        response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_200_when_database_broker_cache_and_model_answer(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "cache": "ok", "model": "ok"},
    }


@pytest.mark.django_db
def test_readyz_is_503_naming_the_failing_part_and_nothing_of_why(client, monkeypatch):
    def down():
        raise ConnectionError("redis://10.0.0.7:6379 refused the connection")

    monkeypatch.setitem(health.CHECKS, "cache", down)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {
            "database": "ok",
            "broker": "ok",
            "cache": "failing",
            "model": "ok",
        },
    }
    assert b"10.0.0.7" not in response.content


@pytest.mark.parametrize("model", ["{tmp}/gone", "someone/not-in-the-cache"])
def test_a_model_neither_on_disk_nor_in_the_hub_cache_is_not_ready(
    settings, tmp_path, model
):
    model = model.format(tmp=tmp_path)
    settings.CLIPMATCH = {**settings.CLIPMATCH, "MODEL": model}

    with pytest.raises(FileNotFoundError):
        health._model_files()


# --- /metrics ------------------------------------------------------------------------


def test_metrics_are_a_404_without_a_token_or_the_private_address_setting(client):
    assert client.get("/metrics").status_code == 404


def test_metrics_are_a_404_with_the_wrong_token(client, metrics_token):
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer guess")

    assert response.status_code == 404


@pytest.mark.django_db
def test_metrics_answer_private_addresses_only_when_the_setting_allows(
    client, settings
):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "METRICS_ALLOW_PRIVATE": True}

    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="93.184.216.34").status_code == 404


@pytest.mark.django_db
def test_metrics_show_verdicts_queue_and_decisions_from_the_database(
    client, metrics_token
):
    queue_item(status="review", title_similarity=0.25)
    queue_item(status="held", title_similarity=0.1)

    text = _scrape(client)

    assert (
        metric_sample(text, 'clipmatch_listings_scored_total{verdict="review"}') == 1.0
    )
    assert metric_sample(text, 'clipmatch_listings_scored_total{verdict="hold"}') == 1.0
    assert metric_sample(text, 'clipmatch_listings_scored_total{verdict="pass"}') == 0.0
    assert metric_sample(text, 'clipmatch_listings{status="held"}') == 1.0
    assert metric_sample(text, "clipmatch_review_queue_length") == 2.0
    assert metric_sample(text, "clipmatch_review_queue_oldest_seconds") >= 0.0
    assert (
        metric_sample(text, 'clipmatch_decisions_total{by="system",to_status="review"}')
        == 1.0
    )


@pytest.mark.django_db(transaction=True)
def test_metrics_show_the_depth_and_oldest_item_of_each_queue(
    client, metrics_token, settings
):
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    name = settings.Q_CLUSTER["name"]
    broker = get_broker(name)
    broker.purge_queue()
    async_task("listings.tasks.reconcile_scoring")
    try:
        text = _scrape(client)
    finally:
        broker.purge_queue()

    assert metric_sample(text, f'clipmatch_broker_up{{queue="{name}"}}') == 1.0
    assert metric_sample(text, f'clipmatch_queue_depth{{queue="{name}"}}') == 1.0
    webhooks = settings.CLIPMATCH_API["WEBHOOK_QUEUE"]
    assert metric_sample(text, f'clipmatch_queue_depth{{queue="{webhooks}"}}') == 0.0
    assert (
        0.0
        < metric_sample(text, f'clipmatch_queue_oldest_seconds{{queue="{name}"}}')
        < 60
    )


def test_a_queue_whose_broker_is_down_is_a_figure_not_a_failed_scrape(
    monkeypatch, settings
):
    def refuse(name):
        raise ConnectionError("down")

    monkeypatch.setattr("django_q.brokers.get_broker", refuse)
    name = settings.Q_CLUSTER["name"]

    families = {f.name: f for f in metrics._queue_metrics(now=None)}

    up = families["clipmatch_broker_up"].samples
    assert [(s.labels, s.value) for s in up] == [
        ({"queue": name}, 0),
        ({"queue": settings.CLIPMATCH_API["WEBHOOK_QUEUE"]}, 0),
    ]
    assert families["clipmatch_queue_depth"].samples == []


def test_a_finished_scoring_task_is_timed_from_its_queueing(monkeypatch):
    from datetime import datetime, timedelta

    before = REGISTRY.get_sample_value("clipmatch_scoring_latency_seconds_count") or 0
    slow = REGISTRY.get_sample_value(
        "clipmatch_scoring_latency_seconds_bucket", {"le": "2.0"}
    )
    queued = datetime(2026, 1, 1, 12, 0, 0)

    metrics.task_done(
        None,
        task={
            "func": metrics.SCORE_TASK,
            "success": True,
            "started": queued,
            "stopped": queued + timedelta(seconds=3.5),
        },
    )

    assert REGISTRY.get_sample_value("clipmatch_scoring_latency_seconds_count") == (
        before + 1
    )
    # 3.5 s lies above the 2 s bucket: that bucket did not move.
    assert (
        REGISTRY.get_sample_value(
            "clipmatch_scoring_latency_seconds_bucket", {"le": "2.0"}
        )
        == slow
    )


def test_a_worker_preloads_the_scoring_model_and_times_it_only_when_asked(
    monkeypatch, settings
):
    from django import db

    loaded = []

    def engine_for_scoring():
        loaded.append(1)
        return type(
            "Engine", (), {"version": "v", "precision": "fp32", "device": "cpu"}
        )

    monkeypatch.setattr("clipmatch.services.engine_for_scoring", engine_for_scoring)
    monkeypatch.setattr(db.connections, "close_all", lambda: None)
    monkeypatch.setattr(db, "close_old_connections", lambda: None)
    count = "clipmatch_model_load_seconds_count"
    before = REGISTRY.get_sample_value(count) or 0

    settings.CLIPMATCH = {**settings.CLIPMATCH, "PRELOAD_MODEL": False}
    metrics.worker_started(None, proc_name="Process-1")
    assert loaded == []

    settings.CLIPMATCH = {**settings.CLIPMATCH, "PRELOAD_MODEL": True}
    metrics.worker_started(None, proc_name="MainProcess")  # worker() run in-process
    assert loaded == []
    metrics.worker_started(None, proc_name="Process-1")
    assert loaded == [1]
    assert REGISTRY.get_sample_value(count) == before + 1


def test_the_webhook_clusters_workers_never_load_the_model(monkeypatch, settings):
    from django_q.conf import Conf

    monkeypatch.setattr(
        "clipmatch.services.engine_for_scoring",
        lambda: pytest.fail("a webhook worker loaded the model"),
    )
    monkeypatch.setattr(Conf, "CLUSTER_NAME", settings.CLIPMATCH_API["WEBHOOK_QUEUE"])
    settings.CLIPMATCH = {**settings.CLIPMATCH, "PRELOAD_MODEL": True}

    metrics.worker_started(None, proc_name="Process-1")


@pytest.mark.django_db
def test_after_each_task_a_worker_forgets_its_query_log_and_releases_memory(
    monkeypatch,
):
    from django.db import connection

    from listings.models import Listing

    released = []
    monkeypatch.setattr(
        "clipmatch.inference.memory.memory_release", lambda: released.append(1)
    )
    connection.force_debug_cursor = True  # the query log DEBUG keeps
    try:
        Listing.objects.count()
        assert len(connection.queries) == 1

        metrics.task_memory_release(None, task={}, func=None)
    finally:
        connection.force_debug_cursor = False

    assert connection.queries == []
    assert released == [1]


# --- request ids -------------------------------------------------------------------


def test_every_response_carries_a_fresh_request_id(client):
    first = client.get("/healthz")["X-Request-Id"]
    second = client.get("/healthz")["X-Request-Id"]

    assert len(first) == 32 and first != second


def test_a_clients_request_id_is_kept_and_an_unsafe_one_replaced(client):
    kept = client.get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a.42")["X-Request-Id"]
    replaced = client.get("/healthz", HTTP_X_REQUEST_ID="a\nb")["X-Request-Id"]

    assert kept == "lb-7f3a.42"
    assert replaced != "a\nb" and len(replaced) == 32


def test_each_request_is_logged_once_with_its_id_and_status(client, caplog):
    caplog.set_level(logging.INFO, logger="clipmatch.request")

    client.get("/healthz", HTTP_X_REQUEST_ID="req-1")

    (record,) = [r for r in caplog.records if r.name == "clipmatch.request"]
    assert record.getMessage() == "GET /healthz 200"
    assert (record.status, record.path, record.method) == (200, "/healthz", "GET")
    # Put there by the handler's RequestIdFilter while the request was running.
    assert record.request_id == "req-1"
    assert observability.current_request_id() == ""


@pytest.mark.django_db(transaction=True)
def test_a_task_queued_by_a_request_carries_its_request_id(seller_api, photo):
    from django_q.brokers import get_broker
    from django_q.signals import pre_enqueue

    seen = []

    def record(sender, task, **kwargs):
        seen.append((task["func"], task.get("request_id")))

    pre_enqueue.connect(record)
    try:
        response = seller_api.patch(
            f"/api/v1/listings/{photo.listing_id}/",
            {"title": "a blue dotted mug"},
            HTTP_X_REQUEST_ID="req-42",
        )
    finally:
        pre_enqueue.disconnect(record)
        get_broker().purge_queue()

    assert response.status_code == 200, response.json()
    assert seen == [("listings.tasks.score_listing", "req-42")]


def test_a_task_runs_under_the_id_it_was_queued_with_and_logs_one_line(caplog):
    caplog.set_level(logging.INFO, logger="clipmatch.task")
    task = {"id": "abc", "func": "listings.tasks.score_listing", "request_id": "r-9"}

    observability.task_starting(None, task=task)
    assert observability.current_request_id() == "r-9"
    observability.task_finished(None, task={**task, "success": True})

    (record,) = caplog.records
    assert record.getMessage().startswith("task 'listings.tasks.score_listing' ok ")
    assert (record.func, record.outcome, record.request_id) == (
        "listings.tasks.score_listing",
        "ok",
        "r-9",
    )
    assert observability.current_request_id() == ""


def test_a_task_no_request_queued_gets_an_id_of_its_own():
    observability.task_starting(None, task={"id": "t1", "func": "x"})

    assert observability.current_request_id() == "task-t1"
    observability.request_id_var.set("")


def test_json_lines_carry_the_request_id_and_the_extras():
    record = logging.makeLogRecord(
        {"name": "clipmatch.request", "msg": "GET %s", "args": ("/x",), "status": 201}
    )
    observability.RequestIdFilter().filter(record)

    line = json.loads(observability.JsonFormatter().format(record))

    assert {k: line[k] for k in ("logger", "message", "request_id", "status")} == {
        "logger": "clipmatch.request",
        "message": "GET /x",
        "request_id": "-",
        "status": 201,
    }


# --- photos ------------------------------------------------------------------------


@pytest.fixture
def photo(seller):
    return ListingImageFactory(listing__seller=seller)


def test_a_seller_gets_the_photo_of_their_own_listing(seller_api, photo):
    response = seller_api.get(photo.image.url)

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == photo.image.open("rb").read()


def test_another_seller_gets_a_404_for_a_photo_not_theirs(other_seller_api, photo):
    assert other_seller_api.get(photo.image.url).status_code == 404


def test_a_moderator_gets_any_photo(moderator_api, photo):
    assert moderator_api.get(photo.image.url).status_code == 200


def test_without_a_login_a_photo_is_a_401(photo):
    assert Client().get(photo.image.url).status_code == 401


def test_with_accel_redirect_the_proxy_sends_the_photo(seller_api, photo, settings):
    settings.CLIPMATCH_API = {
        **settings.CLIPMATCH_API,
        "MEDIA_ACCEL_REDIRECT": "/protected-media/",
    }

    response = seller_api.get(photo.image.url)

    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/protected-media/{photo.image.name}"
    assert response["Content-Type"] == "image/png"
    assert response.content == b""
