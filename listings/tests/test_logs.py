"""What the logs say while serving: routine tasks at DEBUG, no WARNING per 4xx."""

import logging

import pytest
from django.conf import settings
from django.test import Client
from django.urls import path

from listings import tasks
from listings.logs import RoutineTasksToDebug
from listings.services.reconcile import ReconcileReport
from listings.webhooks import tasks as webhook_tasks

ROUTINE = [
    "Enqueued [clipmatch] 61",
    "Process-1 created task red-cat from schedule [clipmatch: reconcile scoring]",
    "Process-2 processing red-cat 'listings.tasks.reconcile_scoring' "
    "[clipmatch: reconcile scoring]",
    "Processed 'listings.webhooks.tasks.dispatch_due_webhooks' (blue-dog)",
    "Processed 'listings.tasks.worker_check' (clipmatch: worker check)",
]
KEPT = [
    "Process-2 processing green-owl 'listings.tasks.score_listing'",
    "Processed 'listings.tasks.score_listing' (green-owl)",
    "Q Cluster red-cat [clipmatch] running.",
]


@pytest.fixture
def django_q_log(caplog):
    """Records of the "django-q" logger with the project's filter, at `level`."""
    logger = logging.getLogger("django-q")
    assert [type(f) for f in logger.filters] == [RoutineTasksToDebug]

    def log(level, messages, severity=logging.INFO):
        caplog.clear()
        old = logger.level
        logger.setLevel(level)
        try:
            for message in messages:
                logger.log(severity, message)
        finally:
            logger.setLevel(old)
        return [(r.levelname, r.getMessage()) for r in caplog.records]

    return log


def test_django_q_lines_about_routine_tasks_are_dropped_at_info(django_q_log):
    assert django_q_log(logging.INFO, ROUTINE + KEPT) == [
        ("INFO", message) for message in KEPT
    ]


def test_with_debug_on_they_are_shown_as_debug(django_q_log):
    assert django_q_log(logging.DEBUG, ROUTINE) == [
        ("DEBUG", message) for message in ROUTINE
    ]


def test_a_failed_routine_task_is_still_an_error(django_q_log):
    failed = "Failed 'listings.tasks.reconcile_scoring' (red-cat) - boom"

    assert django_q_log(logging.INFO, [failed], logging.ERROR) == [("ERROR", failed)]


@pytest.mark.django_db
def test_the_filter_names_every_schedule_and_the_tasks_that_exist():
    from django.utils.module_loading import import_string
    from django_q.models import Schedule

    from listings.services.idempotency import PURGER
    from listings.services.reconcile import RECONCILER
    from listings.webhooks.services import DISPATCHER

    config = settings.LOGGING["filters"]["routine_tasks"]
    scheduled = set(Schedule.objects.values_list("name", flat=True))

    assert config["schedules"] == [RECONCILER, DISPATCHER, PURGER]
    assert scheduled == set(config["schedules"])
    for func in config["funcs"]:
        assert callable(import_string(func))


def test_4xx_responses_log_nothing(client, caplog):
    client.get("/no-such-page/")
    client.get("/api/v1/listings/")  # 401

    assert [r for r in caplog.records if r.name == "django.request"] == []


def _boom(request):
    raise RuntimeError("boom")


urlpatterns = [path("boom/", _boom)]


@pytest.mark.urls(__name__)
def test_a_5xx_response_is_still_logged_as_an_error_with_its_traceback(caplog):
    response = Client(raise_request_exception=False).get("/boom/")

    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert response.status_code == 500
    assert (record.levelname, record.getMessage()) == (
        "ERROR",
        "Internal Server Error: /boom/",
    )
    assert record.exc_info[1].args == ("boom",)


@pytest.mark.parametrize(
    "report, said",
    [
        (ReconcileReport(waiting=[3]), []),
        (
            ReconcileReport(requeued=[1, 2], abandoned=[2], quarantined=[5]),
            [
                "Reconciler: listings re-queued: 2, abandoned attempts: 1, "
                "quarantined to review: 1, orphaned attempts closed: 0."
            ],
        ),
        (
            ReconcileReport(orphans_closed=[7, 8]),
            [
                "Reconciler: listings re-queued: 0, abandoned attempts: 0, "
                "quarantined to review: 0, orphaned attempts closed: 2."
            ],
        ),
    ],
)
def test_the_reconciler_says_what_it_did_and_nothing_when_it_did_nothing(
    monkeypatch, caplog, report, said
):
    monkeypatch.setattr("listings.services.reconcile.scoring_reconcile", lambda: report)

    with caplog.at_level(logging.INFO):
        tasks.reconcile_scoring()

    assert [r.getMessage() for r in caplog.records] == said


@pytest.mark.parametrize(
    "queued, said", [([], []), ([4, 7], ["Webhook dispatcher: deliveries queued: 2."])]
)
def test_the_webhook_dispatcher_says_what_it_queued_and_nothing_otherwise(
    monkeypatch, caplog, queued, said
):
    monkeypatch.setattr(
        "listings.webhooks.services.webhooks_dispatch_due", lambda: queued
    )

    with caplog.at_level(logging.INFO):
        assert webhook_tasks.dispatch_due_webhooks() == queued

    assert [r.getMessage() for r in caplog.records] == said
