"""The listings tests' fixtures (users, token clients, models) serve here too."""

from listings.tests.conftest import *  # noqa: F403
