"""Prometheus figures: what the database and the broker hold, read at scrape time,
and what only a worker process sees (scoring latency, task outcomes, model load).

Worker processes are other processes, often on other machines, so the figures that
matter most are read from the database and the broker by whichever web process is
scraped. The in-process ones use prometheus-client's multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set (gunicorn and qcluster on one machine share the
folder; `make prod` sets it), and the process's own registry otherwise.
"""

from __future__ import annotations

import logging
import os
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger(__name__)

SCORE_TASK = "listings.tasks.score_listing"

SCORING_LATENCY = Histogram(
    "clipmatch_scoring_latency_seconds",
    "From a listing's save (its scoring task queued on commit) to its verdict.",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
)
TASKS = Counter(
    "clipmatch_tasks",
    "django-q2 tasks run by the workers, by function and outcome.",
    ["func", "outcome"],
)
MODEL_LOAD = Histogram(
    "clipmatch_model_load_seconds",
    "Time to load the configured model in a worker process (CLIPMATCH_PRELOAD_MODEL).",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)


def _seconds_since(moment, now) -> float:
    return max((now - moment).total_seconds(), 0.0) if moment else 0.0


def _by_label(family, name: str, documentation: str, labels: list[str], values):
    metric = family(name, documentation, labels=labels)
    for key, value in sorted(values.items()):
        metric.add_metric(list(key), value)
    return metric


class DatabaseCollector:
    """Listings, scores, decisions, the review queue and webhook deliveries from the
    database; the depth and oldest item of each task queue from the broker."""

    def collect(self):
        from django.utils import timezone

        from listings import selectors

        now = timezone.now()
        figures = selectors.ops_figures()

        yield _by_label(
            CounterMetricFamily,
            "clipmatch_listings_scored",
            "Scores that routed a listing (shadow scores left out), by verdict.",
            ["verdict"],
            {
                (v,): figures.scores_by_verdict.get(v, 0)
                for v in ("pass", "review", "hold")
            },
        )
        yield _by_label(
            GaugeMetricFamily,
            "clipmatch_listings",
            "Listings by status now.",
            ["status"],
            {(status,): n for status, n in figures.listings_by_status.items()},
        )
        yield _by_label(
            CounterMetricFamily,
            "clipmatch_scoring_attempts",
            "Scoring attempts by outcome (failed and abandoned are the failures).",
            ["outcome"],
            {(outcome,): n for outcome, n in figures.attempts_by_outcome.items()},
        )
        yield CounterMetricFamily(
            "clipmatch_quarantines",
            "Listings sent to review because scoring kept failing.",
            value=figures.quarantines,
        )
        yield _by_label(
            CounterMetricFamily,
            "clipmatch_decisions",
            "Status changes written, by new status and by whom (system or person).",
            ["to_status", "by"],
            figures.decisions,
        )
        yield GaugeMetricFamily(
            "clipmatch_review_queue_length",
            "Listings waiting for a moderator (held, review, appealed, escalated).",
            value=figures.review_queue_length,
        )
        yield GaugeMetricFamily(
            "clipmatch_review_queue_oldest_seconds",
            "How long the longest-waiting item has been in the review queue.",
            value=_seconds_since(figures.review_oldest_waiting, now),
        )
        yield _by_label(
            CounterMetricFamily,
            "clipmatch_webhook_deliveries",
            "Webhook deliveries by status (cancelled, delivered, failed, pending, "
            "sending).",
            ["status"],
            {
                (status,): n
                for status, n in figures.webhook_deliveries_by_status.items()
            },
        )
        yield from _queue_metrics(now)


def queue_names() -> list[str]:
    """The task queues the settings name: the scoring cluster's own, the webhooks'
    (served by qcluster_webhooks) and any ALT_CLUSTERS."""
    from django.conf import settings

    from clipmatch import conf

    cluster = getattr(settings, "Q_CLUSTER", {})
    names = [cluster.get("name", "default"), conf.get("WEBHOOK_QUEUE")]
    names += [name for name in cluster.get("ALT_CLUSTERS", {}) if name not in names]
    return names


def _oldest_enqueued(broker):
    """When the item at the head of the queue was queued, or None when empty."""
    from django_q.brokers.orm import ORM
    from django_q.brokers.redis_broker import Redis
    from django_q.signing import SignedPackage

    if isinstance(broker, Redis):
        payload = broker.connection.lindex(broker.list_key, 0)
    elif isinstance(broker, ORM):
        from django.utils import timezone

        # As queue_size() counts them: a row locked by a worker is being run.
        waiting = broker.get_connection().filter(
            key=broker.list_key, lock__lte=timezone.now()
        )
        head = waiting.order_by("id")
        payload = head.values_list("payload", flat=True).first()
    else:
        return None
    return SignedPackage.loads(payload).get("started") if payload else None


def _queue_metrics(now):
    from django_q.brokers import get_broker

    depth = GaugeMetricFamily(
        "clipmatch_queue_depth", "Tasks waiting in each queue.", labels=["queue"]
    )
    oldest = GaugeMetricFamily(
        "clipmatch_queue_oldest_seconds",
        "How long the task at the head of each queue has waited.",
        labels=["queue"],
    )
    up = GaugeMetricFamily(
        "clipmatch_broker_up",
        "1 when the broker answered this scrape.",
        labels=["queue"],
    )
    for name in queue_names():
        try:
            broker = get_broker(name)
            size = broker.queue_size()
            head = _oldest_enqueued(broker)
        except Exception:  # a broker that is down is a figure, not a failed scrape
            log.warning("The broker for queue %s did not answer.", name, exc_info=True)
            up.add_metric([name], 0)
            continue
        up.add_metric([name], 1)
        depth.add_metric([name], size)
        oldest.add_metric([name], _seconds_since(head, now))
    yield from (up, depth, oldest)


def exposition() -> tuple[bytes, str]:
    """The whole scrape: this machine's processes and the database's figures."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, multiprocess

    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    registry.register(DatabaseCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


# --- django-q2 worker hooks ---------------------------------------------------------


def worker_started(sender, proc_name=None, **kwargs) -> None:
    """In each scoring worker process after the fork, before it takes a task: load
    the model that scores (the activated version, else the configured model) if
    asked to. django-q2 sends post_spawn with the worker idle, so the task timeout
    never counts the load. A load that fails is logged and the worker lives on:
    each task then tries the load itself and fails with its error (retried, never
    passed), and a model repaired meanwhile is picked up."""
    from django import db
    from django_q.conf import Conf

    from clipmatch import conf

    if not conf.get("PRELOAD_MODEL"):
        return
    if Conf.CLUSTER_NAME == conf.get("WEBHOOK_QUEUE"):
        return  # the webhook cluster's workers never score
    if proc_name == "MainProcess":
        # worker() run in the calling process (sync use, tests): not a process
        # of its own, and its database connections are the caller's.
        return
    from clipmatch.services import engine_for_scoring

    started = time.monotonic()
    # The parent's connections are not this process's to use (as django-q2 does
    # before each task); the one opened here is closed before the first task too.
    db.close_old_connections()
    try:
        engine = engine_for_scoring()
    except Exception:  # the first task reports it as its own failure, with retries
        log.exception("Preloading the model in %s failed.", proc_name)
        return
    finally:
        db.connections.close_all()
    seconds = time.monotonic() - started
    MODEL_LOAD.observe(seconds)
    log.info(
        "Model ready in %s (pid %s): %s at %s on %s, loaded in %.2fs.",
        proc_name,
        os.getpid(),
        engine.version,
        engine.precision,
        engine.device,
        seconds,
    )


def task_done(sender, task: dict, func=None, **kwargs) -> None:
    from listings.observability import task_func_name

    name = task_func_name(task, func)
    success = bool(task.get("success"))
    TASKS.labels(func=name, outcome="ok" if success else "failed").inc()
    started, stopped = task.get("started"), task.get("stopped")
    if name == SCORE_TASK and success and started and stopped:
        SCORING_LATENCY.observe(_seconds_since(started, stopped))


def task_memory_release(sender, **kwargs) -> None:
    """After each task in a worker: forget the queries DEBUG keeps (a worker has
    no request to end the log) and give freed memory back to the system."""
    from django import db

    from clipmatch.inference.memory import memory_release

    db.reset_queries()
    memory_release()


def connect() -> None:
    from django_q.signals import post_execute_in_worker, post_spawn

    post_spawn.connect(worker_started, dispatch_uid="clipmatch-preload-model")
    post_execute_in_worker.connect(task_done, dispatch_uid="clipmatch-task-metrics")
    post_execute_in_worker.connect(
        task_memory_release, dispatch_uid="clipmatch-task-memory"
    )
