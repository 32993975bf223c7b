"""System checks refuse timeout settings that break scoring silently."""

import pytest

from clipmatch.checks import check_hub_timeout, check_timeouts


def test_the_shipped_settings_pass():
    assert check_timeouts() == []


def test_timeout_at_or_above_retry_is_an_error(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 250, "retry": 200}

    assert [e.id for e in check_timeouts()] == ["clipmatch.E002"]


def test_timeout_above_the_stale_window_is_an_error(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 400, "retry": 500}

    assert [e.id for e in check_timeouts()] == ["clipmatch.E003"]


def test_no_timeout_is_an_error(settings):
    settings.Q_CLUSTER = {"name": "x"}

    assert [e.id for e in check_timeouts()] == ["clipmatch.E001"]


@pytest.mark.parametrize("value", [0, -1.5, "10", None])
def test_a_hub_timeout_that_is_not_a_positive_number_is_an_error(settings, value):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "HUB_TIMEOUT": value}

    errors = check_hub_timeout()

    assert [(e.id, e.msg) for e in errors] == [
        (
            "clipmatch.E004",
            "CLIPMATCH_HUB_TIMEOUT must be a positive number of seconds, not "
            f"{value!r}.",
        )
    ]


def test_the_default_hub_timeout_passes_the_check():
    assert check_hub_timeout() == []
