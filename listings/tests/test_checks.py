"""System checks refuse settings that do not fit listings' own columns."""

import pytest
from django.core.checks import Error
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from listings.checks import check_api_limits, check_reject_reasons


def test_the_shipped_limits_fit_the_columns():
    assert check_api_limits() == []
    assert check_reject_reasons() == []


def test_a_title_limit_above_the_column_stops_manage_py_check(settings):
    settings.CLIPMATCH_API = {**settings.CLIPMATCH_API, "MAX_TITLE_LENGTH": 201}

    with pytest.raises(SystemCheckError) as raised:
        call_command("check")

    assert (
        "(listings.E001) CLIPMATCH_API_MAX_TITLE_LENGTH (201) is above the 200 "
        "characters of Listing.title: a longer text would pass the API and fail when "
        "it is saved." in str(raised.value)
    )


def test_a_limit_at_the_column_is_accepted(settings):
    settings.CLIPMATCH_API = {
        **settings.CLIPMATCH_API,
        "MAX_TITLE_LENGTH": 200,
        "MAX_DESCRIPTION_LENGTH": 5000,
    }

    assert check_api_limits() == []


def test_a_description_limit_above_the_field_is_an_error(settings):
    settings.CLIPMATCH_API = {**settings.CLIPMATCH_API, "MAX_DESCRIPTION_LENGTH": 5001}

    assert check_api_limits() == [
        Error(
            "CLIPMATCH_API_MAX_DESCRIPTION_LENGTH (5001) is above the 5000 characters "
            "of Listing.description: a longer text would pass the API and fail when "
            "it is saved.",
            id="listings.E001",
        )
    ]


def test_a_bad_limit_is_left_to_the_value_check(settings):
    settings.CLIPMATCH_API = {**settings.CLIPMATCH_API, "MAX_TITLE_LENGTH": "300"}

    assert check_api_limits() == []


def test_a_reject_code_longer_than_its_column_is_an_error(settings):
    code = "x" * 41
    settings.CLIPMATCH = {
        **settings.CLIPMATCH,
        "REJECT_REASONS": [["other", "Other"], [code, "Too long"]],
    }

    assert check_reject_reasons() == [
        Error(
            f'CLIPMATCH["REJECT_REASONS"] has the code {code!r}, longer than the 40 '
            "characters of ListingDecision.reason_code.",
            id="listings.E002",
        )
    ]
