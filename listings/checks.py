"""System checks for the settings that must fit listings' own columns."""

from django.core.checks import Error, register

from clipmatch import conf
from listings.models import Listing, ListingDecision


@register()
def check_api_limits(app_configs=None, **kwargs):
    """A text the API accepts must fit the model field it is saved in."""
    errors = []
    for key, field_name in [
        ("MAX_TITLE_LENGTH", "title"),
        ("MAX_DESCRIPTION_LENGTH", "description"),
    ]:
        # A bad value on its own is clipmatch's check_settings to report.
        limit = conf.get_or_none(key)
        column = Listing._meta.get_field(field_name).max_length
        if limit is not None and limit > column:
            errors.append(
                Error(
                    f"{conf.SETTINGS[key].label} ({limit}) is above the {column} "
                    f"characters of Listing.{field_name}: a longer text would pass "
                    "the API and fail when it is saved.",
                    id="listings.E001",
                )
            )
    return errors


@register()
def check_reject_reasons(app_configs=None, **kwargs):
    """A reject reason's code is stored in ListingDecision.reason_code."""
    reasons = conf.get_or_none("REJECT_REASONS") or []
    column = ListingDecision._meta.get_field("reason_code").max_length
    return [
        Error(
            f'CLIPMATCH["REJECT_REASONS"] has the code {code!r}, longer than the '
            f"{column} characters of ListingDecision.reason_code.",
            id="listings.E002",
        )
        for code, _label in reasons
        if len(code) > column
    ]
