"""System checks refuse timeout settings that break scoring silently."""

from clipmatch.checks import check_timeouts


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
