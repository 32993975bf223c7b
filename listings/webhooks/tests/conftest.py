"""The listings tests' fixtures (users, token clients, models) serve here too, and
the webhook tests' own."""

import pytest

from listings.tests.conftest import *  # noqa: F403


@pytest.fixture
def private_hosts_allowed(settings):
    """Webhook URLs on loopback, where the tests' receivers listen."""
    settings.CLIPMATCH_API = {
        **settings.CLIPMATCH_API,
        "WEBHOOK_ALLOW_PRIVATE_HOSTS": True,
    }
