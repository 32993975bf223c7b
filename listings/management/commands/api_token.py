"""Print (or replace) a user's API token."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from listings.services.accounts import api_token_issue


class Command(BaseCommand):
    help = "Print a user's API token, creating it when missing."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--reset", action="store_true", help="Replace the token with a new one."
        )

    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        self.stdout.write(api_token_issue(user=user, reset=options["reset"]))
