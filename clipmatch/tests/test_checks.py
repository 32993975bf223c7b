"""System checks refuse every bad CLIPMATCH value and timeouts that break scoring."""

import pytest
from django.core.checks import Error
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from clipmatch.checks import (
    check_log_format,
    check_settings,
    check_timeouts,
    check_webhook_queue,
    check_webhook_timeouts,
)


def test_the_shipped_settings_pass():
    assert check_settings() == []
    assert check_timeouts() == []
    assert check_webhook_timeouts() == []
    assert check_webhook_queue() == []
    call_command("check")  # every app's checks, listings' included: no error


def test_timeout_at_or_above_retry_is_an_error(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 250, "retry": 200}

    assert [e.id for e in check_timeouts()] == ["clipmatch.E002"]


def test_timeout_above_the_stale_window_is_an_error(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 400, "retry": 500}

    assert [e.id for e in check_timeouts()] == ["clipmatch.E003"]


def test_no_timeout_is_an_error(settings):
    settings.Q_CLUSTER = {"name": "x"}

    assert [e.id for e in check_timeouts()] == ["clipmatch.E001"]


def test_a_bad_stale_window_is_reported_once_not_compared(settings):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "SCORING_STALE_AFTER": "300"}

    assert check_timeouts() == []
    assert [e.id for e in check_settings()] == ["clipmatch.E012"]


def test_a_webhook_sender_must_time_out_before_it_looks_dead(settings):
    settings.CLIPMATCH_API = {
        **settings.CLIPMATCH_API,
        "WEBHOOK_TIMEOUT": 30,
        "WEBHOOK_SENDING_STALE_AFTER": 30,
    }

    assert check_webhook_timeouts() == [
        Error(
            "CLIPMATCH_WEBHOOK_STALE_AFTER (30s) must exceed CLIPMATCH_WEBHOOK_TIMEOUT "
            "(30s), or a delivery still waiting for its answer is claimed and sent "
            "again.",
            id="clipmatch.E004",
        )
    ]


def test_webhooks_on_the_scoring_queue_are_an_error(settings):
    settings.CLIPMATCH_API = {
        **settings.CLIPMATCH_API,
        "WEBHOOK_QUEUE": settings.Q_CLUSTER["name"],
    }

    assert check_webhook_queue() == [
        Error(
            f"CLIPMATCH_WEBHOOK_QUEUE ({settings.Q_CLUSTER['name']!r}) must differ "
            f"from the Q_CLUSTER name ({settings.Q_CLUSTER['name']!r}), or webhook "
            "tasks share the scoring queue.",
            id="clipmatch.E006",
        )
    ]


def test_review_aging_hours_of_zero_stops_manage_py_check(settings):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "REVIEW_AGING_HOURS": 0}

    with pytest.raises(SystemCheckError) as raised:
        call_command("check")

    assert (
        "(clipmatch.E014) CLIPMATCH_REVIEW_AGING_HOURS must be a number above 0, "
        "not 0." in str(raised.value)
    )


POSITIVE = "must be a whole number above 0, not"
COUNT = "must be a whole number, 0 or more, not"
TEMPLATES = (
    'must hold prompts with "{}" (or "{category}") where the category\'s name goes;'
)
REASONS = 'must be a list of [code, label] pairs, one of them "other"'
FORMATS = "JPEG, MPO, PNG, WEBP, GIF"

# fmt: off
BAD_VALUES = [
    ("CLIPMATCH", "MODEL", "", "E018",
     "CLIPMATCH_MODEL must be a Hugging Face hub id or a local save_pretrained "
     "directory, not ''."),
    ("CLIPMATCH", "MODEL", None, "E018",
     "CLIPMATCH_MODEL must be a Hugging Face hub id or a local save_pretrained "
     "directory, not None."),
    ("CLIPMATCH", "DEVICE", "gpu", "E016",
     "CLIPMATCH_DEVICE must be one of auto, cpu, cuda, not 'gpu'."),
    ("CLIPMATCH", "PRECISION", "half", "E030",
     "CLIPMATCH_PRECISION must be one of auto, fp32, bf16, fp16, not 'half'."),
    ("CLIPMATCH", "THRESHOLDS", [0.2], "E019",
     'CLIPMATCH_THRESHOLDS must be a JSON object like {"title": {"pass": P, ...}}, '
     "not [0.2]."),
    ("CLIPMATCH", "THRESHOLDS", {"title": {"pass": 0.3, "hold": 0.2}}, "E019",
     "CLIPMATCH_THRESHOLDS is not a set of thresholds: Thresholds need title.pass, "
     "title.hold, description.pass and description.hold as numbers; got "
     "{'title': {'pass': 0.3, 'hold': 0.2}}."),
    ("CLIPMATCH", "THRESHOLDS",
     {"title": {"pass": 0.2, "hold": 0.3}, "description": {"pass": 0.3, "hold": 0.2}},
     "E019",
     "CLIPMATCH_THRESHOLDS is not a set of thresholds: The title hold threshold is "
     "above its pass threshold."),
    ("CLIPMATCH", "THRESHOLDS",
     {"title": {"pass": 0.3, "hold": 0.2}, "description": {"pass": 0.3, "hold": 0.2},
      "category_top_k": -1},
     "E019",
     "CLIPMATCH_THRESHOLDS has category_top_k -1: it must be a whole number, 0 or "
     "more."),
    ("CLIPMATCH", "CATEGORY_TOP_K", -1, "E013",
     f"CLIPMATCH_CATEGORY_TOP_K {COUNT} -1."),
    ("CLIPMATCH", "PROMPT_TEMPLATES", [], "E020",
     'CLIPMATCH["PROMPT_TEMPLATES"] must be a list of at least one prompt with "{}" '
     "where the category's name goes, not []."),
    ("CLIPMATCH", "PROMPT_TEMPLATES", ["a photo of a {}.", "a photo."], "E020",
     f"CLIPMATCH[\"PROMPT_TEMPLATES\"] {TEMPLATES} 'a photo.' is not one."),
    ("CLIPMATCH", "PROMPT_TEMPLATES", ["a {name} for sale"], "E020",
     f"CLIPMATCH[\"PROMPT_TEMPLATES\"] {TEMPLATES} 'a {{name}} for sale' is not one."),
    ("CLIPMATCH", "AUDIT_RATE", 1.5, "E015",
     "CLIPMATCH_AUDIT_RATE must be a number from 0 to 1, not 1.5."),
    ("CLIPMATCH", "AUDIT_RATE", -0.1, "E015",
     "CLIPMATCH_AUDIT_RATE must be a number from 0 to 1, not -0.1."),
    ("CLIPMATCH", "BATCH_SIZE", 0, "E012", f"CLIPMATCH_BATCH_SIZE {POSITIVE} 0."),
    ("CLIPMATCH", "BATCH_SIZE", True, "E012", f"CLIPMATCH_BATCH_SIZE {POSITIVE} True."),
    ("CLIPMATCH", "TORCH_THREADS", 1.5, "E012",
     f"CLIPMATCH_TORCH_THREADS {POSITIVE} 1.5."),
    ("CLIPMATCH", "MAX_IMAGE_PIXELS", -1, "E012",
     f"CLIPMATCH_MAX_IMAGE_PIXELS {POSITIVE} -1."),
    ("CLIPMATCH", "MAX_IMAGE_BYTES", "15MB", "E012",
     f"CLIPMATCH_MAX_IMAGE_BYTES {POSITIVE} '15MB'."),
    ("CLIPMATCH", "IMAGE_FORMATS", [], "E022",
     f'CLIPMATCH["IMAGE_FORMATS"] must list at least one of {FORMATS}, not [].'),
    ("CLIPMATCH", "IMAGE_FORMATS", ["PNG", "JPG"], "E022",
     f"CLIPMATCH[\"IMAGE_FORMATS\"] may only list {FORMATS}; 'JPG' is not one."),
    ("CLIPMATCH", "SCORING_MAX_ATTEMPTS", 0, "E012",
     f"CLIPMATCH_SCORING_MAX_ATTEMPTS {POSITIVE} 0."),
    ("CLIPMATCH", "SCORING_BATCH_LISTINGS", 0, "E012",
     f"CLIPMATCH_SCORING_BATCH_LISTINGS {POSITIVE} 0."),
    ("CLIPMATCH", "SCORING_RETRY_BACKOFF", -30, "E013",
     f"CLIPMATCH_SCORING_RETRY_BACKOFF {COUNT} -30."),
    ("CLIPMATCH", "SCORING_STALE_AFTER", 0, "E012",
     f"CLIPMATCH_SCORING_STALE_AFTER {POSITIVE} 0."),
    ("CLIPMATCH", "RECONCILE_EVERY_MINUTES", 0, "E012",
     f"CLIPMATCH_RECONCILE_EVERY_MINUTES {POSITIVE} 0."),
    ("CLIPMATCH", "REVIEW_LEASE_SECONDS", 0, "E012",
     f"CLIPMATCH_REVIEW_LEASE_SECONDS {POSITIVE} 0."),
    ("CLIPMATCH", "REVIEW_AGING_HOURS", 0.0, "E014",
     "CLIPMATCH_REVIEW_AGING_HOURS must be a number above 0, not 0.0."),
    ("CLIPMATCH", "REVIEW_SKIP_COOLDOWN_SECONDS", -1, "E013",
     f"CLIPMATCH_REVIEW_SKIP_COOLDOWN_SECONDS {COUNT} -1."),
    ("CLIPMATCH", "REVIEW_UNDO_SECONDS", -5, "E013",
     f"CLIPMATCH_REVIEW_UNDO_SECONDS {COUNT} -5."),
    ("CLIPMATCH", "CURRENCY", "euro", "E024",
     "CLIPMATCH_CURRENCY must be a three-letter ISO 4217 code such as EUR, "
     "not 'euro'."),
    ("CLIPMATCH", "REJECT_REASONS", {"other": "Other"}, "E021",
     f"CLIPMATCH[\"REJECT_REASONS\"] {REASONS}, not {{'other': 'Other'}}."),
    ("CLIPMATCH", "REJECT_REASONS", [["other", "Other"], ["spam"]], "E021",
     f"CLIPMATCH[\"REJECT_REASONS\"] {REASONS}; ['spam'] is not a pair of a code "
     "and a label."),
    ("CLIPMATCH", "REJECT_REASONS", [["other", "Other"], ["other", "Else"]], "E021",
     "CLIPMATCH[\"REJECT_REASONS\"] lists the code 'other' twice."),
    ("CLIPMATCH", "REJECT_REASONS", [["spam", "Spam"]], "E021",
     f'CLIPMATCH["REJECT_REASONS"] {REASONS}: a moderator whose reason is not '
     'listed picks "other" and writes a note.'),
    ("CLIPMATCH_API", "MAX_IMAGES_PER_LISTING", 0, "E012",
     f"CLIPMATCH_API_MAX_IMAGES {POSITIVE} 0."),
    ("CLIPMATCH_API", "MAX_TITLE_LENGTH", 0, "E012",
     f"CLIPMATCH_API_MAX_TITLE_LENGTH {POSITIVE} 0."),
    ("CLIPMATCH_API", "MAX_DESCRIPTION_LENGTH", None, "E012",
     f"CLIPMATCH_API_MAX_DESCRIPTION_LENGTH {POSITIVE} None."),
    ("CLIPMATCH_API", "MAX_WAIT_SECONDS", -1, "E013",
     f"CLIPMATCH_API_MAX_WAIT {COUNT} -1."),
    ("CLIPMATCH_API", "WEBHOOK_MAX_ATTEMPTS", 0, "E012",
     f"CLIPMATCH_WEBHOOK_MAX_ATTEMPTS {POSITIVE} 0."),
    ("CLIPMATCH_API", "WEBHOOK_RETRY_BACKOFF", -1, "E013",
     f"CLIPMATCH_WEBHOOK_RETRY_BACKOFF {COUNT} -1."),
    ("CLIPMATCH_API", "WEBHOOK_TIMEOUT", 0, "E012",
     f"CLIPMATCH_WEBHOOK_TIMEOUT {POSITIVE} 0."),
    ("CLIPMATCH_API", "WEBHOOK_SENDING_STALE_AFTER", 0, "E012",
     f"CLIPMATCH_WEBHOOK_STALE_AFTER {POSITIVE} 0."),
    ("CLIPMATCH_API", "WEBHOOK_QUEUE", "Web Hooks", "E025",
     "CLIPMATCH_WEBHOOK_QUEUE must be 1 to 50 lowercase letters, digits and dashes "
     "(a django-q2 queue name), not 'Web Hooks'."),
    ("CLIPMATCH_API", "WEBHOOK_QUEUE", "", "E025",
     "CLIPMATCH_WEBHOOK_QUEUE must be 1 to 50 lowercase letters, digits and dashes "
     "(a django-q2 queue name), not ''."),
    ("CLIPMATCH_API", "WEBHOOK_MAX_ENDPOINTS", 0, "E012",
     f"CLIPMATCH_WEBHOOK_MAX_ENDPOINTS {POSITIVE} 0."),
    ("CLIPMATCH_API", "WEBHOOK_ALLOW_PRIVATE_HOSTS", "yes", "E017",
     "CLIPMATCH_WEBHOOK_ALLOW_PRIVATE_HOSTS must be true or false, not 'yes'."),
    ("CLIPMATCH_API", "MEDIA_ACCEL_REDIRECT", None, "E023",
     "CLIPMATCH_MEDIA_ACCEL_REDIRECT must be a string, not None."),
    ("CLIPMATCH", "PRELOAD_MODEL", "1", "E017",
     "CLIPMATCH_PRELOAD_MODEL must be true or false, not '1'."),
    ("CLIPMATCH", "METRICS_TOKEN", 42, "E023",
     "CLIPMATCH_METRICS_TOKEN must be a string, not 42."),
    ("CLIPMATCH", "METRICS_ALLOW_PRIVATE", "no", "E017",
     "CLIPMATCH_METRICS_ALLOW_PRIVATE must be true or false, not 'no'."),
]
# fmt: on


@pytest.mark.parametrize(("group", "key", "value", "check_id", "message"), BAD_VALUES)
def test_a_bad_value_is_an_error_that_says_what_to_set(
    settings, group, key, value, check_id, message
):
    setattr(settings, group, {**getattr(settings, group), key: value})

    errors = check_settings()

    assert [(e.id, e.msg) for e in errors] == [(f"clipmatch.{check_id}", message)]


def test_the_error_says_where_the_value_comes_from(settings):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "BATCH_SIZE": 0}
    (error,) = check_settings()

    assert error.hint == (
        'Read from settings.CLIPMATCH["BATCH_SIZE"], which config/settings/base.py '
        "sets from the environment variable CLIPMATCH_BATCH_SIZE."
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("THRESHOLDS", {}),
        ("CATEGORY_TOP_K", 0),
        ("AUDIT_RATE", 0),
        ("AUDIT_RATE", 1),
        ("REVIEW_AGING_HOURS", 1),
        ("SCORING_RETRY_BACKOFF", 0),
        ("REVIEW_SKIP_COOLDOWN_SECONDS", 0),
        ("PROMPT_TEMPLATES", ["{category}", "a {} for sale"]),
        ("IMAGE_FORMATS", ["png"]),
        ("REJECT_REASONS", [["other", "Other"]]),
    ],
)
def test_values_at_the_edges_are_accepted(settings, key, value):
    settings.CLIPMATCH = {**settings.CLIPMATCH, key: value}

    assert check_settings() == []


def test_a_missing_key_is_an_error(settings):
    settings.CLIPMATCH_API = {
        k: v for k, v in settings.CLIPMATCH_API.items() if k != "WEBHOOK_TIMEOUT"
    }

    assert [(e.id, e.msg) for e in check_settings()] == [
        (
            "clipmatch.E010",
            "settings.CLIPMATCH_API has no 'WEBHOOK_TIMEOUT': config/settings/base.py "
            "sets every key, and a settings module that replaces the dict must keep "
            "them all.",
        )
    ]


def test_a_missing_dict_is_one_error(settings):
    del settings.CLIPMATCH

    assert [(e.id, e.msg) for e in check_settings()] == [
        (
            "clipmatch.E010",
            "settings.CLIPMATCH must be a dict with the keys that "
            "config/settings/base.py sets, not None.",
        )
    ]


def test_an_unknown_key_is_an_error(settings):
    settings.CLIPMATCH_API = {**settings.CLIPMATCH_API, "MAX_IMAGES": 3}

    assert [(e.id, e.msg) for e in check_settings()] == [
        (
            "clipmatch.E011",
            "settings.CLIPMATCH_API has an unknown key 'MAX_IMAGES'; the keys are "
            "MAX_IMAGES_PER_LISTING, MAX_TITLE_LENGTH, MAX_DESCRIPTION_LENGTH, "
            "MAX_WAIT_SECONDS, IDEMPOTENCY_KEY_HOURS, WEBHOOK_MAX_ATTEMPTS, "
            "WEBHOOK_RETRY_BACKOFF, WEBHOOK_TIMEOUT, WEBHOOK_SENDING_STALE_AFTER, "
            "WEBHOOK_QUEUE, WEBHOOK_MAX_ENDPOINTS, WEBHOOK_ALLOW_PRIVATE_HOSTS, "
            "MEDIA_ACCEL_REDIRECT.",
        )
    ]


def test_a_log_format_other_than_plain_or_json_is_an_error(settings):
    settings.LOG_FORMAT = "jsonl"

    assert [(e.id, e.msg) for e in check_log_format()] == [
        ("clipmatch.E005", "LOG_FORMAT must be one of plain, json, not 'jsonl'.")
    ]


def test_fp16_on_a_cpu_device_stops_manage_py_check(settings):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "PRECISION": "fp16", "DEVICE": "cpu"}

    with pytest.raises(SystemCheckError) as raised:
        call_command("check")

    assert (
        "(clipmatch.E008) CLIPMATCH_PRECISION fp16 runs on CUDA only, and "
        "CLIPMATCH_DEVICE is cpu." in str(raised.value)
    )
